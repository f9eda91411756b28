"""Every link in README.md and docs/*.md leads somewhere: a relative Markdown link names a
file or folder of the repository, its ``#anchor`` names a heading of that page (GitHub's
slugs), and every repository path written in backticks (``workers/worker/relay.py``,
``deploy/prometheus/``) exists. A page that names a module which moved fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import ROOT

#: The pages a reader finds from the README.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: Top-level folders whose paths, written in backticks, must exist.
TOP_LEVEL = (
    "workers",
    "shared",
    "notifier",
    "deploy",
    "scripts",
    "docs",
    "tests",
    "clients",
    "examples",
)

#: A backticked repository path: a top-level folder, then path characters only (so
#: ``workers.bench.measure.<name>`` or ``tests/notifier --x`` are not taken for paths).
REPO_PATH = re.compile(rf"^(?:{'|'.join(TOP_LEVEL)})/[\w./{{}},-]*$")

#: Paths a page writes relative to a folder it names, not to the repository, with the
#: reason. An entry that is no longer needed fails ``test_each_exception_is_still_needed``.
RELATIVE_ELSEWHERE = {
    ("docs/protocol.md", "examples/register-order.js"): "in clients/node/ (the row names it)",
}

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def prose(text: str) -> str:
    """The page without its fenced code blocks (a ``#`` comment there is no heading)."""
    kept: list[str] = []
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            kept.append("")
            continue
        kept.append("" if fenced else line)
    return "\n".join(kept)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text without Markdown, lower case, every
    character that is not a letter, digit, space, ``-`` or ``_`` dropped, spaces to ``-``."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.replace("`", "").strip().lower()
    return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's anchor; a repeated heading gets ``-1``, ``-2``, ... as on GitHub."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in prose(text).splitlines():
        matched = HEADING.match(line)
        if matched is None:
            continue
        base = slug(matched.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def broken_links(page: Path) -> list[str]:
    """The page's relative links whose file or anchor does not exist, with the reason."""
    text = prose(page.read_text(encoding="utf-8"))
    text = CODE_SPAN.sub("", text)  # `[a](b)` inside backticks is code, not a link
    broken: list[str] = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, file:
            continue
        path_part, _, anchor = target.partition("#")
        linked = (page.parent / path_part).resolve() if path_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif path_part and not linked.is_relative_to(ROOT):
            broken.append(f"{target}: outside the repository")
        elif anchor:
            if linked.suffix != ".md" or linked.is_dir():
                broken.append(f"{target}: an anchor into a file that is not a page")
            elif anchor not in anchors(linked.read_text(encoding="utf-8")):
                broken.append(f"{target}: {linked.name} has no heading with this anchor")
    return broken


def expand(path: str) -> list[str]:
    """``a.{service,timer}`` → ``a.service``, ``a.timer`` (as the shell reads it)."""
    matched = re.search(r"\{([^{}]*)\}", path)
    if matched is None:
        return [path]
    head, tail = path[: matched.start()], path[matched.end() :]
    return [name for choice in matched.group(1).split(",") for name in expand(head + choice + tail)]


def missing_paths(page: Path, exceptions: frozenset[str] = frozenset()) -> list[str]:
    """The repository paths the page writes in backticks that do not exist, but for the
    given exceptions."""
    text = prose(page.read_text(encoding="utf-8"))
    missing: list[str] = []
    for _, span in CODE_SPAN.findall(text):
        span = span.strip()
        if not REPO_PATH.match(span) or "..." in span or span in exceptions:  # "a/.../b" elides
            continue
        missing.extend(name for name in expand(span) if not (ROOT / name).exists())
    return missing


def exceptions_of(page: Path) -> frozenset[str]:
    name = page.relative_to(ROOT).as_posix()
    return frozenset(path for where, path in RELATIVE_ELSEWHERE if where == name)


def test_pages_are_found() -> None:
    names = {page.relative_to(ROOT).as_posix() for page in PAGES}
    assert {"README.md", "docs/protocol.md", "docs/operations.md"} <= names


@pytest.mark.parametrize(
    "page", [pytest.param(page, id=page.relative_to(ROOT).as_posix()) for page in PAGES]
)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    assert broken_links(page) == []


@pytest.mark.parametrize(
    "page", [pytest.param(page, id=page.relative_to(ROOT).as_posix()) for page in PAGES]
)
def test_every_repository_path_in_backticks_exists(page: Path) -> None:
    assert missing_paths(page, exceptions_of(page)) == []


@pytest.mark.parametrize(
    ("where", "path"), [pytest.param(*key, id=f"{key[0]}:{key[1]}") for key in RELATIVE_ELSEWHERE]
)
def test_each_exception_is_still_needed(where: str, path: str) -> None:
    assert path in missing_paths(ROOT / where), f"{where} no longer needs {path} excepted"


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        pytest.param("What `jobordre up` runs", "what-jobordre-up-runs", id="code"),
        pytest.param(
            "Prometheus, Grafana, alerts and systemd (`deploy/`)",
            "prometheus-grafana-alerts-and-systemd-deploy",
            id="punctuation",
        ),
        pytest.param("Notifier: change → screen", "notifier-change--screen", id="symbol"),
        pytest.param("The Node.js client", "the-nodejs-client", id="dot"),
        pytest.param(
            "Quickstart: a job order through § 137",
            "quickstart-a-job-order-through--137",
            id="section-sign",
        ),
        pytest.param(
            "Job order fields (ORDER.json)", "job-order-fields-orderjson", id="parentheses"
        ),
        pytest.param("Hvad der sker på én jobordre", "hvad-der-sker-på-én-jobordre", id="danish"),
        pytest.param("`JOBORDRE_HOME`", "jobordre_home", id="underscore"),
    ],
)
def test_anchors_follow_githubs_slugs(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_a_repeated_heading_gets_a_numbered_anchor_and_code_blocks_have_no_headings() -> None:
    text = "# Page\n\n## Tests\n\n```sh\n# not a heading\n```\n\n### Tests\n"
    assert anchors(text) == {"page", "tests", "tests-1"}


def test_the_check_finds_a_missing_page_a_missing_anchor_and_a_missing_path(
    tmp_path: Path,
) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n## Here\n\n[ok](#here) [gone](#there) [file](missing.md) "
        "[web](https://example.org/#x) `[x](not-a-link.md)`\n\n"
        "`workers/no_such_module.py` `shared/settings.py` `clients/.../Elided.java`\n"
        "`deploy/systemd/jobordre-health.{service,nope}`\n",
        encoding="utf-8",
    )
    assert broken_links(page) == [
        "#there: page.md has no heading with this anchor",
        "missing.md: no such file",
    ]
    assert missing_paths(page) == [
        "workers/no_such_module.py",
        "deploy/systemd/jobordre-health.nope",
    ]
