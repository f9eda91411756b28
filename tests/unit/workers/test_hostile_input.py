"""Every reader answers hostile input with ``validation_error``, never a traceback.

ORDER.json / PATCH.json, ``--cpr -``, key files and the worker's envelope decoder get
malformed, deeply nested, non-UTF-8, binary, huge and empty input; hypothesis drives them
with arbitrary bytes and JSON on top of the hand-picked cases.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.envelope import decode_envelope
from shared.errors import InvalidInput
from workers.cli import run
from workers.cli.common import MAX_FILE_BYTES, read_cpr, read_json
from workers.client.credentials import read_key_file

HOSTILE = [
    pytest.param(b"", id="empty"),
    pytest.param(b"   \n", id="blank"),
    pytest.param(b"\xff\xfe\x00\x01", id="binary"),
    pytest.param("{}".encode("utf-16"), id="utf-16"),
    pytest.param(b"[" * 50_000 + b"]" * 50_000, id="deeply-nested"),
    pytest.param(
        json.dumps(
            {"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}
        ).encode(),
        id="nested-object",
    ),
    pytest.param(b'{"title": NaN}', id="nan"),
    pytest.param(b"[1, 2]", id="not-an-object"),
    pytest.param(b"{" + b" " * (MAX_FILE_BYTES + 1) + b"}", id="huge"),
    pytest.param(b'{"title": "\\ud800"}', id="lone-surrogate"),
]


@pytest.mark.parametrize("data", HOSTILE)
def test_an_order_file_is_refused_with_the_field_named(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "order.json"
    path.write_bytes(data)
    with pytest.raises(InvalidInput) as refused:
        read_json(str(path), "file")
    assert refused.value.field == "file" and str(path) in refused.value.message


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_the_file_reader(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.json"
    path.write_bytes(data)
    # Anything but a clean refusal (a traceback of another kind) fails the test.
    with contextlib.suppress(InvalidInput):
        assert isinstance(read_json(str(path), "file"), dict)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=2000), st.text(max_size=2000)))
def test_arbitrary_input_never_crashes_the_envelope_decoder(data: bytes | str) -> None:
    with contextlib.suppress(InvalidInput):
        decode_envelope(data)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(
    document=st.dictionaries(
        st.sampled_from(
            [
                "schema_version",
                "kind",
                "command_id",
                "principal",
                "correlation_id",
                "sent_at",
                "payload",
                "key_id",
                "signature",
                "x",
            ]
        ),
        JSONISH,
    )
)
def test_arbitrary_envelope_shapes_are_refused_cleanly(document: dict[str, Any]) -> None:
    document.setdefault("schema_version", 1)
    with contextlib.suppress(InvalidInput):
        decode_envelope(json.dumps(document))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(b"1" * 200, id="too-long"),
        pytest.param(b"\n", id="blank-line"),
    ],
)
def test_a_cpr_on_stdin_is_refused_cleanly(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    with pytest.raises(InvalidInput) as refused:
        read_cpr("-")
    assert refused.value.field == "cpr"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x00\x01binary", id="binary"),
        pytest.param(b'{"principal": "jobcentre:101"}', id="no-secret"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b'{"principal": 1, "key_id": "", "secret": ""}', id="empty-values"),
        pytest.param(b" " * 10_000, id="huge"),
    ],
)
def test_a_bad_key_file_is_named_in_a_clear_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "jobcentre_101.key"
    path.write_bytes(data)
    with pytest.raises(InvalidInput) as refused:
        read_key_file(path)
    assert str(path) in refused.value.message


def test_the_cli_prints_json_not_a_traceback_for_a_binary_order_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "order.json"
    path.write_bytes(b"\xff\xd8\xff\xe0 a JPEG")
    code = run(["order", "register", "--file", str(path), "--as", "jobcentre:101", "--json"])
    assert code == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert (error["code"], error["field"]) == ("validation_error", "file")
