"""Logs never carry a CPR number, whatever wrote them."""

from __future__ import annotations

import logging

import pytest

from shared.redaction import RedactingFormatter, escape_controls, redact_cpr
from tests.factories import CPR_1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(f"cpr={CPR_1}", "cpr=**********", id="plain"),
        pytest.param("010190-1234 placed", "********** placed", id="with-dash"),
        pytest.param("order 12345 v2", "order 12345 v2", id="short-numbers-stay"),
        pytest.param("id 123456789012", "id 123456789012", id="longer-numbers-stay"),
    ],
)
def test_cpr_shaped_numbers_are_blanked(text: str, expected: str) -> None:
    assert redact_cpr(text) == expected


def test_the_formatter_redacts_messages_and_tracebacks() -> None:
    record = logging.LogRecord(
        "dramatiq",
        logging.ERROR,
        __file__,
        1,
        "Failed to process message register_placement(%r)",
        ({"cpr": CPR_1},),
        None,
    )
    try:
        raise ValueError(f"bad {CPR_1}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = RedactingFormatter("%(message)s").format(record)
    assert CPR_1 not in line and "ValueError" in line


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("010190 1234", id="space"),
        pytest.param("010190\u20131234", id="en-dash"),
        pytest.param("010190\u20141234", id="em-dash"),
        pytest.param("010190\u00a01234", id="no-break-space"),
        pytest.param("010190/1234", id="slash"),
        pytest.param("01.01.90-1234", id="dotted-date"),
        pytest.param("0101 90 1234", id="spaced-year"),
    ],
)
def test_cpr_numbers_written_with_other_separators_are_blanked(text: str) -> None:
    assert redact_cpr(f"spørg {text} om") == "spørg ********** om"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("command 64a46635-0101901234-ab failed", id="dashed-hex-group"),
        pytest.param("command 0101901234ab7c9e failed", id="hex-run"),
        pytest.param("id 123e4567-e89b-12d3-a456-0101901234ff", id="uuid"),
        pytest.param("05.12.2026 1430", id="date-and-time"),
    ],
)
def test_ten_digits_inside_a_hex_id_or_a_date_stay(text: str) -> None:
    assert redact_cpr(text) == text


def test_escape_controls_writes_out_every_c0_and_c1_control() -> None:
    text = "a\x1b[2J\x07b\nc\x9bd\x7f"
    assert escape_controls(text) == "a\\x1b[2J\\x07b\\nc\\x9bd\\x7f"
    assert escape_controls("Tømrer – æøå") == "Tømrer – æøå"


class _Message:
    """Shaped like a Dramatiq message: its text is the actor call with every argument."""

    message_id = "5f0c"
    actor_name = "register_order"
    args = ('{"contact": {"name": "Karen Jensen", "phone": "+4529292929"}}',)

    def __str__(self) -> str:
        return f"{self.actor_name}({self.args[0]!r})"


def test_a_message_logged_as_an_argument_is_named_not_printed() -> None:
    record = logging.LogRecord(
        "dramatiq.worker.WorkerThread",
        logging.ERROR,
        __file__,
        1,
        "Failed to process message %s with unhandled exception.",
        (_Message(),),
        None,
    )
    line = RedactingFormatter("%(message)s").format(record)
    assert line == "Failed to process message register_order[5f0c] with unhandled exception."


def test_pydantic_input_values_are_cut_from_tracebacks() -> None:
    from pydantic import BaseModel, ValidationError

    class Contact(BaseModel):
        phone: int

    # Kept out of the line that raises: tracebacks quote source lines.
    given = {"phone": "ring til " + "Karen Jensen"}
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), None)
    try:
        Contact.model_validate(given)
    except ValidationError:
        import sys

        record.exc_info = sys.exc_info()
    line = RedactingFormatter("%(message)s").format(record)
    assert "Karen Jensen" not in line
    assert "ValidationError" in line and "input_value=<withheld>" in line
