"""Checks for the Danish identifiers jobordre accepts: CVR, P-number, CPR, kommunekode, postcode.

Every check takes the raw value and the name of the field it came from, and either returns
the value in its one normal form or raises :class:`~shared.errors.InvalidInput` naming that
field. Messages say what is wrong and what form is expected, never the value itself: a CPR
number is sensitive personal data, and the other identifiers gain nothing from an echo.

The rules are those in SPEC.md, "Identifiers".
"""

from __future__ import annotations

import datetime
import re

from shared.errors import InvalidInput
from shared.municipalities import MUNICIPALITIES

__all__ = [
    "cpr_birth_date",
    "cpr_passes_modulus11",
    "municipality_name",
    "validate_cpr",
    "validate_cvr",
    "validate_municipality",
    "validate_p_number",
    "validate_postcode",
]

# ``[0-9]`` rather than ``\d``: ``\d`` also matches Arabic-Indic, fullwidth and other Unicode
# digits, which no Danish register issues and ``int()`` would silently accept.
_CVR = re.compile(r"[1-9][0-9]{7}")
_P_NUMBER = re.compile(r"[0-9]{10}")
_CPR = re.compile(r"([0-9]{6})-?([0-9]{4})")
_MUNICIPALITY = re.compile(r"[0-9]{3}")
_POSTCODE = re.compile(r"[0-9]{4}")

#: Weights of the CVR modulus-11 check, one per digit.
CVR_WEIGHTS: tuple[int, ...] = (2, 7, 6, 5, 4, 3, 2, 1)
#: Weights of the traditional CPR modulus-11 check, one per digit.
CPR_WEIGHTS: tuple[int, ...] = (4, 3, 2, 7, 6, 5, 4, 3, 2, 1)


def _text(value: object, field: str, expected: str) -> str:
    """The value as a string stripped of surrounding blanks, or :class:`InvalidInput`.

    Values arrive from JSON and the command line, so a number or ``null`` is a caller's
    mistake to report, not a programming error to crash on.
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: must be a string of {expected}", field=field)
    return value.strip()


def _weighted_sum(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(digit) * weight for digit, weight in zip(digits, weights, strict=True))


def validate_cvr(value: str, field: str = "cvr") -> str:
    """Check a CVR number (company number): 8 digits, first not 0, passing modulus 11.

    Returns the 8 digits. Surrounding blanks are ignored.
    """
    text = _text(value, field, "8 digits")
    if not _CVR.fullmatch(text):
        raise InvalidInput(f"{field}: must be 8 digits, the first not 0", field=field)
    if _weighted_sum(text, CVR_WEIGHTS) % 11:
        raise InvalidInput(
            f"{field}: fails the modulus-11 check; check the number with the employer",
            field=field,
        )
    return text


def validate_p_number(value: str, field: str = "p_number") -> str:
    """Check a P-number (production unit number): exactly 10 digits, no check digit.

    Returns the 10 digits. Surrounding blanks are ignored.
    """
    text = _text(value, field, "10 digits")
    if not _P_NUMBER.fullmatch(text):
        raise InvalidInput(f"{field}: must be 10 digits", field=field)
    return text


def _cpr_century(year_in_century: int, seventh_digit: int) -> int:
    """The century of a CPR birth year, per the CPR office's table.

    The 7th digit (first of the four after the date) and the two-digit year together pick
    the century: that is how one ``DDMMYY`` serves people born in three centuries.
    """
    if seventh_digit <= 3:
        return 1900
    if seventh_digit in (4, 9):
        return 2000 if year_in_century <= 36 else 1900
    # 5 to 8
    return 2000 if year_in_century <= 57 else 1800


def _parse_cpr(value: object, field: str) -> tuple[str, datetime.date]:
    """The 10 digits of a CPR number and the birth date they encode, or :class:`InvalidInput`.

    No message may contain any part of the value: it is personal data. The messages spell
    numbers out as words so that none of them contains a digit at all.
    """
    text = _text(value, field, "ten digits DDMMYYSSSS")
    match = _CPR.fullmatch(text)
    if match is None:
        raise InvalidInput(
            f"{field}: must be ten digits DDMMYYSSSS (a dash after the date is allowed)",
            field=field,
        )
    digits = match.group(1) + match.group(2)
    day, month, year = int(digits[0:2]), int(digits[2:4]), int(digits[4:6])
    try:
        born = datetime.date(_cpr_century(year, int(digits[6])) + year, month, day)
    except ValueError:
        raise InvalidInput(
            f"{field}: the first six digits must be a real birth date DDMMYY "
            "(the century follows from the seventh digit and the year)",
            field=field,
        ) from None  # chain nothing from the date parsing: the error must carry no trace of it
    return digits, born


def validate_cpr(value: str, field: str = "cpr") -> str:
    """Check a CPR number (personal identity number) and return its 10 digits.

    Accepts ``DDMMYYSSSS`` or ``DDMMYY-SSSS``; surrounding blanks are ignored. The date must
    exist, with the century taken from the 7th digit and the year as the CPR office
    prescribes. Modulus 11 is deliberately not required: numbers that fail it have been
    issued since 1 October 2007 (see :func:`cpr_passes_modulus11`).
    """
    digits, _ = _parse_cpr(value, field)
    return digits


def cpr_birth_date(cpr: str) -> datetime.date:
    """The birth date a CPR number encodes; raises :class:`InvalidInput` as :func:`validate_cpr`."""
    _, born = _parse_cpr(cpr, "cpr")
    return born


def cpr_passes_modulus11(cpr: str) -> bool:
    """Whether a CPR number passes the traditional modulus-11 check.

    Only informative: a CPR number that fails it can still be valid. Raises
    :class:`InvalidInput` if ``cpr`` is not a valid CPR number at all.
    """
    digits, _ = _parse_cpr(cpr, "cpr")
    return _weighted_sum(digits, CPR_WEIGHTS) % 11 == 0


def validate_municipality(value: str, field: str = "municipality") -> str:
    """Check a kommunekode: 3 digits naming one of the 98 municipalities.

    Returns the 3 digits. Surrounding blanks are ignored.
    """
    text = _text(value, field, "3 digits")
    if not _MUNICIPALITY.fullmatch(text):
        raise InvalidInput(f"{field}: must be a kommunekode of 3 digits, e.g. 101", field=field)
    if text not in MUNICIPALITIES:
        raise InvalidInput(
            f"{field}: is not the kommunekode of any of the 98 municipalities", field=field
        )
    return text


def municipality_name(code: str) -> str:
    """The name of the municipality with this kommunekode, e.g. ``"751"`` -> ``"Aarhus"``.

    Raises :class:`InvalidInput` as :func:`validate_municipality` for an unknown code.
    """
    return MUNICIPALITIES[validate_municipality(code)]


def validate_postcode(value: str, field: str = "postcode") -> str:
    """Check a Danish postcode: 4 digits, not ``0000``.

    Returns the 4 digits. Surrounding blanks are ignored. Whether the postcode is actually
    in use is not checked: the list changes, and a wrong postcode is not a wrong order.
    """
    text = _text(value, field, "4 digits")
    if not _POSTCODE.fullmatch(text) or text == "0000":
        raise InvalidInput(f"{field}: must be a postcode of 4 digits, e.g. 8000", field=field)
    return text
