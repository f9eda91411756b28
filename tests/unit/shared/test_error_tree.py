"""One error tree: every exception class jobordre defines is a JobordreError, and the tree
drawn in shared/errors.py's docstring names each one under its true parent."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import shared.errors
from shared.errors import JobordreError

ROOT = Path(__file__).resolve().parents[3]
#: Where exceptions may be defined; the measure scripts are scripts, not the library.
PACKAGES = ("shared", "workers", "notifier")


def defined_exceptions() -> list[tuple[str, str]]:
    """(module, class) of every public class whose bases end in Error or Exception, or are
    a class of the tree, in the library's source."""
    tree_names = set(parents_in_drawing())
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "measure" in path.parts:
                continue
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                    continue
                bases = [ast.unparse(base).rpartition(".")[2] for base in node.bases]
                if any(b.endswith(("Error", "Exception")) or b in tree_names for b in bases):
                    found.append((module.removesuffix(".__init__"), node.name))
    return found


def parents_in_drawing() -> dict[str, str]:
    """Each class in the docstring's drawing (the literal block after ``::``) with the
    class it is drawn under; the root is drawn under nothing."""
    doc = shared.errors.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    stack: list[str] = []
    parents: dict[str, str] = {}
    for line in block.splitlines():
        match = re.match(r"    ((?:[│ ]   )*)(?:[├└]── )?([A-Z]\w+)", line)
        assert match is not None, f"not a line of the drawing: {line!r}"
        depth = len(match.group(1)) // 4 + 1 if "──" in line else 0
        del stack[depth:]
        parents[match.group(2)] = stack[-1] if stack else ""
        stack.append(match.group(2))
    return parents


@pytest.mark.parametrize(
    ("module", "name"), [pytest.param(m, n, id=f"{m}.{n}") for m, n in defined_exceptions()]
)
def test_every_exception_is_in_the_tree_and_drawn_under_its_parent(module: str, name: str) -> None:
    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, JobordreError), f"{module}.{name} is outside the error tree"
    parents = parents_in_drawing()
    assert name in parents, f"{name} is missing from shared/errors.py's drawing"
    if cls is not JobordreError:
        assert cls.__mro__[1].__name__ == parents[name]


def test_the_drawing_names_only_classes_that_exist() -> None:
    defined = {name for _, name in defined_exceptions()}
    assert set(parents_in_drawing()) == defined
