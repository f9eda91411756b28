"""``jobordre protocol check MESSAGE.json --key KEYFILE``: exit 0 and the canonical form for
a command the foundation would take; exit 2 and every problem, by field, for one it would
refuse. Offline: no Redis, no worker, no store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.commands import CommandKind
from shared.envelope import new_envelope_v2
from shared.signing_v2 import FoundationKey, OrganisationKey
from workers.cli import run

KBH = "jobcentre:101"


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, OrganisationKey]:
    foundation = FoundationKey.generate()
    key = OrganisationKey.generate(KBH, foundation.public)
    (tmp_path / "org.key").write_text(key.to_json())
    (tmp_path / "foundation.key").write_text(foundation.to_json())
    return tmp_path / "org.key", tmp_path / "foundation.key", key


def test_a_good_command_passes_with_its_canonical_form(
    files: tuple[Path, Path, OrganisationKey], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file, foundation_file, key = files
    envelope = new_envelope_v2(CommandKind.GET_ORDER, key, {"order_id": 1})
    (tmp_path / "message.json").write_text(envelope.to_json())
    code = run(
        [
            "protocol",
            "check",
            str(tmp_path / "message.json"),
            "--key",
            str(key_file),
            "--foundation",
            str(foundation_file),
            "--json",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    assert (code, report["ok"], report["problems"]) == (0, True, [])
    assert report["canonical"].startswith('{"caseworker":null,"command_id":')


def test_a_refused_command_exits_2_naming_each_field(
    files: tuple[Path, Path, OrganisationKey], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file, _, key = files
    wire = dict(new_envelope_v2(CommandKind.GET_ORDER, key, {"order_id": 1}).wire)
    wire["principal"] = "JOBCENTRE:101"
    (tmp_path / "message.json").write_text(json.dumps(wire))
    code = run(["protocol", "check", str(tmp_path / "message.json"), "--key", str(key_file)])
    out = capsys.readouterr().out
    assert code == 2
    assert "principal:" in out and "signature:" in out
    assert "canonical form expected" in out
