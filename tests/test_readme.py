"""The README's quickstart runs as written against a real ``jobordre up``: the README cannot
drift from the program."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import JOBORDRE, ROOT
from tests.workers.embedded.test_embedded import home, start_up  # noqa: F401 (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

#: Where an expected output line starts in the quickstart block.
EXPECTED = "#   "


def quickstart_block(readme: str) -> str:
    """The first ``sh`` block under the "Quickstart" heading."""
    section = readme.split("\n## Quickstart", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert found is not None, "the README's quickstart has no ```sh block"
    return found.group(1)


def test_the_quickstart_block_is_found_and_uses_the_shipped_examples() -> None:
    block = quickstart_block((ROOT / "README.md").read_text(encoding="utf-8"))
    files = re.findall(r"--file (\S+)", block)
    assert files == ["examples/order.json", "examples/patch.json"]
    assert all((ROOT / name).is_file() for name in files)


def test_the_readme_quickstart_runs_as_written(home: Path) -> None:  # noqa: F811
    block = quickstart_block((ROOT / "README.md").read_text(encoding="utf-8"))
    running = start_up(home)
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JOBORDRE_")}
        env["JOBORDRE_HOME"] = str(home)
        # The block puts $PWD/.venv/bin first; the program under test comes first anyway.
        env["PATH"] = f"{JOBORDRE.parent}{os.pathsep}{env.get('PATH', '')}"
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=500,
            check=False,
        )
    finally:
        running.stop()
    assert done.returncode == 0, f"the quickstart failed:\n{done.stdout}\n{done.stderr}"
    expected = [
        line.strip()[len(EXPECTED.strip()) :].strip()
        for line in block.splitlines()
        if line.startswith(EXPECTED)
    ]
    assert len(expected) >= 8
    printed = done.stdout.splitlines()
    position = 0
    for line in expected:  # each shown output, in the order the README shows them
        assert line in printed[position:], f"not printed (after line {position}): {line}"
        position = printed.index(line, position) + 1
    assert "0101901234" not in running.output, "up's terminal never shows the CPR"
