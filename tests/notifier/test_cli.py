"""``jobordre notifier``'s arguments, checked before anything connects."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import JOBORDRE


def notifier(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBORDRE_")}
    # Nothing listens there: argument errors must come before any connection attempt.
    env["JOBORDRE_REDIS_URL"] = "redis://127.0.0.1:1/0"
    return subprocess.run(
        [str(JOBORDRE), "notifier", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "field"),
    [
        pytest.param(("--caseworker", "kf1", "--as", "jobcentre:999"), "as", id="bad-kommunekode"),
        pytest.param(("--caseworker", "kf1", "--as", "nobody"), "as", id="bad-principal"),
        pytest.param(("--caseworker", "k f/1", "--as", "jobcentre:751"), "caseworker", id="bad-id"),
    ],
)
def test_bad_arguments_are_validation_errors(args: tuple[str, ...], field: str) -> None:
    done = notifier(*args)
    assert done.returncode == 2, done.stderr
    assert f"validation_error: {field}:" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_names_the_options() -> None:
    done = notifier("--help")
    assert done.returncode == 0
    for option in ("--caseworker", "--as", "--terminal", "--verbose"):
        assert option in done.stdout
