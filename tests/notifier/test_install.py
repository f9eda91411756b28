"""``jobordre notifier install``'s files: checked keys, quoted commands (the whole way, with
a real session start, is in test_desktop_program)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from notifier.install import Installation, exec_argument, install, uninstall
from shared.errors import InvalidInput
from shared.signing import SigningKey
from workers.client.credentials import write_key

ME = "jobcentre:751"
STRING_ESCAPES = {"s": " ", "n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def split_exec(value: str) -> list[str]:
    """A desktop entry's ``Exec`` value as a launcher reads it (Desktop Entry
    Specification): string escapes first, then arguments, double-quoted ones unescaped."""
    value = re.sub(r"\\(.)", lambda m: STRING_ESCAPES.get(m[1], "\\" + m[1]), value)
    arguments: list[str] = []
    current: str | None = None
    quoted = escaped = False
    for char in value:
        if quoted:
            if escaped:
                current = (current or "") + char
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
            else:
                current = (current or "") + char
        elif char == '"':
            quoted, current = True, current or ""
        elif char.isspace():
            if current is not None:
                arguments.append(current)
            current = None
        else:
            current = (current or "") + char
    if current is not None:
        arguments.append(current)
    return arguments


@pytest.mark.parametrize(
    "argument",
    [
        pytest.param("/usr/bin/jobordre", id="plain"),
        pytest.param("/home/Anne Sørensen/.venv/bin/jobordre", id="space-and-danish"),
        pytest.param('/opt/a "quoted" $dir\\x`y`', id="reserved-characters"),
    ],
)
def test_an_exec_argument_reads_back_as_it_was(argument: str) -> None:
    line = exec_argument(argument) + " notifier start"
    assert split_exec(line) == [argument, "notifier", "start"]


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "kf1.key"
    write_key(path, SigningKey.generate(ME))
    return path


@pytest.mark.parametrize(
    ("content", "principal"),
    [
        pytest.param(None, ME, id="missing"),
        pytest.param(b"not a key", ME, id="not-a-key"),
        pytest.param("valid", "jobcentre:101", id="another-organisations-key"),
    ],
)
def test_a_bad_key_is_refused_naming_the_field_and_nothing_is_written(
    tmp_path: Path, key: Path, content: bytes | str | None, principal: str
) -> None:
    given = key if content == "valid" else tmp_path / "given.key"
    if isinstance(content, bytes):
        given.write_bytes(content)
    where = Installation(tmp_path / "config")
    with pytest.raises(InvalidInput) as refused:
        install(where, caseworker="kf1", principal=principal, key=given, environment={})
    assert refused.value.field == "key"
    assert not where.root.exists()


def test_only_jobordre_settings_are_carried_and_the_key_is_the_copy(
    tmp_path: Path, key: Path
) -> None:
    where = Installation(tmp_path / "config")
    environment = {
        "JOBORDRE_REDIS_URL": "redis://127.0.0.1:1/0",
        "JOBORDRE_KEY_FILE": str(key),
        "JOBORDRE_LANGUAGE": "en",
        "HOME": "/root",
    }
    install(where, caseworker="kf1", principal=ME, key=key, environment=environment)
    config = json.loads(where.config.read_text())
    assert config == {
        "caseworker": "kf1",
        "principal": ME,
        "environment": {
            "JOBORDRE_KEY_FILE": str(where.key),
            "JOBORDRE_LANGUAGE": "en",
            "JOBORDRE_REDIS_URL": "redis://127.0.0.1:1/0",
        },
    }
    assert where.config.stat().st_mode & 0o777 == 0o600
    assert "Exec=" in where.autostart.read_text()
    assert "RestartPreventExitStatus=9" in where.unit.read_text()


def test_uninstall_when_nothing_is_installed_removes_nothing(tmp_path: Path) -> None:
    assert uninstall(Installation(tmp_path / "config")) == []
