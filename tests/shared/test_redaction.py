"""Logs never carry a CPR number, whatever wrote them."""

from __future__ import annotations

import logging

import pytest

from shared.redaction import RedactingFormatter, redact_cpr
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
