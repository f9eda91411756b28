"""The README is the map: its two commands are the ones users and CI run, every setting
is in its table, every page in docs/ is reachable from "Where to read more", and it stays
short enough to read (the rest lives in docs/)."""

from __future__ import annotations

import re

import pytest

from shared.settings import Settings
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")

#: Longest the map may grow: past this, a section belongs on a page in docs/.
MOST_LINES = 600


def section(heading: str) -> str:
    """The README's text under ``## heading`` up to the next ``## ``."""
    return README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_the_two_commands_are_the_ones_users_and_ci_run() -> None:
    block = re.search(r"```sh\n(.*?)```", section("Two commands"), re.DOTALL)
    assert block is not None, "the README's two commands have no ```sh block"
    commands = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -q -e . && .venv/bin/jobordre up",
        "bash scripts/test",
    ]
    assert "exec bash scripts/test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_the_readme_stays_a_map() -> None:
    assert len(README.splitlines()) < MOST_LINES


@pytest.mark.parametrize(
    "page",
    [pytest.param(page.name, id=page.name) for page in sorted((ROOT / "docs").glob("*.md"))],
)
def test_every_page_in_docs_is_linked_from_where_to_read_more(page: str) -> None:
    assert f"](docs/{page})" in section("Where to read more")


@pytest.mark.parametrize(
    "name", [pytest.param(name, id=name) for name in sorted(Settings.model_fields)]
)
def test_every_setting_is_in_the_environment_variables_table(name: str) -> None:
    assert f"`JOBORDRE_{name.upper()}`" in section("Environment variables")
