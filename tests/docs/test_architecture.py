"""docs/architecture.md is true: every path it names exists, and the imports of the code run
the way its arrows say (read from each module's syntax tree, function-level imports too)."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"

#: Third-party packages the domain core leaves to the store's engine modules.
DRIVERS = ("dramatiq", "redis", "plyer", "psycopg", "psycopg_pool", "sqlite_utils", "sqlite3")


def named_paths() -> list[str]:
    """The repository paths the page names in backticks (``shared/foundation.py``, ``shared/``)."""
    spans = re.findall(r"`([^`\s]+)`", PAGE.read_text())
    return sorted({s for s in spans if "/" in s and re.fullmatch(r"[\w./-]+", s)})


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imported(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every import in a file, function-level ones too: ``import a.b``
    gives ``a.b``; ``from a.b import c`` gives ``a.b``, and ``a.b.c`` too if that is a
    module of this repository."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield node.lineno, base
            for alias in node.names:
                if is_module(f"{base}.{alias.name}"):
                    yield node.lineno, f"{base}.{alias.name}"


def within(module: str, *packages: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def violations(package: str, allowed: tuple[str, ...], watched: tuple[str, ...]) -> list[str]:
    """Imports by modules of ``package`` of anything under ``watched`` but not ``allowed``."""
    found = []
    for path in modules(package):
        for line, target in imported(path):
            if within(target, *watched) and not within(target, *allowed):
                found.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    return found


@pytest.mark.parametrize("path", [pytest.param(p, id=p) for p in named_paths()])
def test_every_path_the_page_names_exists(path: str) -> None:
    assert (ROOT / path).exists(), f"docs/architecture.md names {path}, which does not exist"


def test_the_page_names_a_module_at_each_step_of_the_datas_way() -> None:
    text = PAGE.read_text()
    steps = re.findall(r"^\d+\. \*\*([\w ]+)\.\*\*(.*?)(?=^\d+\. |^## |\Z)", text, re.M | re.S)
    assert [name for name, _ in steps] == [
        "CLI",
        "Client",
        "Queue",
        "Batch consumer",
        "Foundation",
        "Store",
        "Reply",
        "Outbox",
        "Relay",
        "Stream",
        "Notifier",
    ]
    for name, body in steps:
        assert re.search(r"`[\w/]+\.py`", body), f"step {name} names no module"


OUTSIDE = ("workers", "notifier")


@pytest.mark.parametrize(
    ("package", "allowed", "watched"),
    [
        pytest.param("shared", (), (*OUTSIDE, *DRIVERS), id="shared-core"),
        pytest.param("shared/store", DRIVERS, OUTSIDE, id="shared-store"),
        pytest.param("workers/transport", ("workers.transport",), OUTSIDE, id="transport"),
        pytest.param(
            "workers/client",
            ("workers.client", "workers.transport"),
            OUTSIDE,
            id="client",
        ),
        pytest.param(
            "workers/worker",
            ("workers.worker", "workers.client", "workers.transport", "workers.ops"),
            OUTSIDE,
            id="worker",
        ),
        pytest.param("workers/ops", ("workers.ops", "workers.transport"), OUTSIDE, id="ops"),
        pytest.param(
            "workers/embedded",
            ("workers.embedded", "workers.worker", "workers.transport", "workers.ops"),
            OUTSIDE,
            id="embedded",
        ),
        pytest.param("notifier", ("notifier", "workers.client"), OUTSIDE, id="notifier"),
    ],
)
def test_imports_run_the_way_the_arrows_say(
    package: str, allowed: tuple[str, ...], watched: tuple[str, ...]
) -> None:
    found = violations(package, allowed, watched)
    if package == "shared":
        # The store's engine modules are the one place for drivers (the case just below).
        found = [v for v in found if not v.startswith("shared/store/")]
    assert found == []


def imports_where(package: str, wrong: Callable[[Path, str], bool]) -> list[str]:
    """The imports by modules of ``package`` for which ``wrong(path, target)`` holds."""
    return [
        f"{path.relative_to(ROOT)}:{line} imports {target}"
        for path in modules(package)
        for line, target in imported(path)
        if wrong(path, target)
    ]


def test_notifier_takes_only_the_client_package_itself_from_workers() -> None:
    assert (
        imports_where("notifier", lambda _, t: within(t, "workers") and t != "workers.client") == []
    )


def test_only_the_command_line_imports_the_notifier() -> None:
    def wrong(path: Path, target: str) -> bool:
        return within(target, "notifier") and not within(module_name(path), "workers.cli")

    assert imports_where("workers", wrong) == []


def test_command_families_never_import_the_cli_package_back() -> None:
    def wrong(path: Path, target: str) -> bool:
        return path.name != "__init__.py" and target == "workers.cli"

    assert imports_where("workers/cli", wrong) == []


#: Dramatiq's private names jobordre uses; workers/transport/ alone may touch them
#: (tests/workers/transport/test_dramatiq_contract.py pins each).
DRAMATIQ_PRIVATE = frozenset(
    {
        "_RedisConsumer",
        "_add_consumer",
        "_dispatch",
        "_should_do_maintenance",
        "_max_unpack_size",
        "message_cache",
        "queued_message_ids",
        "scripts",
    }
)
#: Pieces of Dramatiq's Redis key names: only workers/transport/dramatiq_redis.py spells them.
DRAMATIQ_KEYS = ("__acks__", "__heartbeats__", ".XQ", ".msgs", ".DQ")


def dramatiq_internals(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), str(path))
    documentation = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in DRAMATIQ_PRIVATE:
            yield f"{path.relative_to(ROOT)}:{node.lineno} uses .{node.attr}"
        elif isinstance(node, (ast.Name, ast.FunctionDef)):
            name = node.id if isinstance(node, ast.Name) else node.name
            if name in DRAMATIQ_PRIVATE:
                yield f"{path.relative_to(ROOT)}:{node.lineno} uses {name}"
        elif isinstance(node, ast.ImportFrom) and within(node.module or "", "dramatiq"):
            for alias in node.names:
                if alias.name.startswith("_"):
                    yield f"{path.relative_to(ROOT)}:{node.lineno} imports {alias.name}"
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in documentation
            and any(key in node.value for key in DRAMATIQ_KEYS)
        ):
            yield f"{path.relative_to(ROOT)}:{node.lineno} spells a Dramatiq key"


@pytest.mark.parametrize("package", ["shared", "workers", "notifier"])
def test_only_the_transport_touches_dramatiq_internals(package: str) -> None:
    found = [
        finding
        for path in modules(package)
        if not within(module_name(path), "workers.transport")
        for finding in dramatiq_internals(path)
    ]
    assert found == []
