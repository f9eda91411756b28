"""Danish identifiers: what jobordre accepts, how it normalizes it, and what it says when not.

The rules are SPEC.md, "Identifiers". Valid CVR numbers below were checked by hand against
the weights 2,7,6,5,4,3,2,1; the CPR numbers are made up for their dates and check digits.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.errors import InvalidInput
from shared.identifiers import (
    cpr_birth_date,
    cpr_passes_modulus11,
    municipality_name,
    validate_cpr,
    validate_cvr,
    validate_municipality,
    validate_p_number,
    validate_postcode,
)
from shared.municipalities import MUNICIPALITIES, MUNICIPALITY_POSTCODES

Validator = Callable[[str, str], str]

#: Every validator with its default field name, for tests that hold for all of them.
VALIDATORS: list[Any] = [
    pytest.param(validate_cvr, "cvr", id="cvr"),
    pytest.param(validate_p_number, "p_number", id="p_number"),
    pytest.param(validate_cpr, "cpr", id="cpr"),
    pytest.param(validate_municipality, "municipality", id="municipality"),
    pytest.param(validate_postcode, "postcode", id="postcode"),
]


# --- CVR ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_value", "expected"),
    [
        pytest.param("10150817", "10150817", id="weighted-sum-divisible-by-11"),
        pytest.param("24256790", "24256790", id="another-valid-number"),
        pytest.param("61126228", "61126228", id="starts-with-6"),
        pytest.param("10000009", "10000009", id="sum-exactly-11"),
        pytest.param(" 29403473\n", "29403473", id="surrounding-blanks-dropped"),
    ],
)
def test_a_cvr_with_8_digits_passing_modulus_11_is_accepted(given_value: str, expected: str):
    assert validate_cvr(given_value) == expected


@pytest.mark.parametrize(
    "given_value",
    [
        pytest.param("1015081", id="7-digits"),
        pytest.param("101508170", id="9-digits"),
        pytest.param("01000004", id="first-digit-0-even-though-sum-divisible-by-11"),
        pytest.param("1015081a", id="letter"),
        pytest.param("1015 0817", id="inner-space"),
        pytest.param("DK10150817", id="country-prefix"),
        pytest.param("１０１５０８１７", id="fullwidth-unicode-digits"),
        pytest.param("", id="empty"),
    ],
)
def test_a_cvr_that_is_not_8_digits_starting_1_to_9_is_rejected(given_value: str):
    with pytest.raises(InvalidInput, match="must be 8 digits, the first not 0") as caught:
        validate_cvr(given_value)
    assert caught.value.field == "cvr"


@pytest.mark.parametrize(
    "given_value",
    [
        pytest.param("10150818", id="last-digit-off-by-one"),
        pytest.param("12345678", id="sequence"),
        pytest.param("10000010", id="sum-12"),
    ],
)
def test_a_cvr_failing_modulus_11_is_rejected_with_advice(given_value: str):
    with pytest.raises(InvalidInput) as caught:
        validate_cvr(given_value)
    assert caught.value.message == (
        "cvr: fails the modulus-11 check; check the number with the employer"
    )
    assert caught.value.code == "validation_error"


def test_a_cvr_error_names_the_field_the_caller_gave():
    with pytest.raises(InvalidInput, match=r"^employer\.cvr: ") as caught:
        validate_cvr("123", "employer.cvr")
    assert caught.value.field == "employer.cvr"


# --- P-number -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_value", "expected"),
    [
        pytest.param("1003388394", "1003388394", id="ten-digits"),
        pytest.param("0000000001", "0000000001", id="leading-zeros-kept"),
        pytest.param("1234567890", "1234567890", id="no-check-digit-required"),
        pytest.param("\t1003388394 ", "1003388394", id="surrounding-blanks-dropped"),
    ],
)
def test_a_p_number_is_any_10_digits(given_value: str, expected: str):
    assert validate_p_number(given_value) == expected


@pytest.mark.parametrize(
    "given_value",
    [
        pytest.param("100338839", id="9-digits"),
        pytest.param("10033883940", id="11-digits"),
        pytest.param("100338839x", id="letter"),
        pytest.param("10150817", id="a-cvr-instead"),
    ],
)
def test_a_p_number_that_is_not_10_digits_is_rejected(given_value: str):
    with pytest.raises(InvalidInput, match="p_number: must be 10 digits") as caught:
        validate_p_number(given_value)
    assert caught.value.field == "p_number"


# --- CPR ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_value", "digits", "born"),
    [
        pytest.param("0707614285", "0707614285", datetime.date(1961, 7, 7), id="plain"),
        pytest.param("070761-4285", "0707614285", datetime.date(1961, 7, 7), id="dash-dropped"),
        pytest.param(" 070761-4285 ", "0707614285", datetime.date(1961, 7, 7), id="blanks"),
        pytest.param("3112991234", "3112991234", datetime.date(1999, 12, 31), id="new-years-eve"),
        pytest.param("2902961234", "2902961234", datetime.date(1996, 2, 29), id="leap-day-1996"),
        pytest.param("2902004000", "2902004000", datetime.date(2000, 2, 29), id="leap-day-2000"),
    ],
)
def test_a_cpr_with_a_real_birth_date_is_accepted_as_10_digits(
    given_value: str, digits: str, born: datetime.date
):
    assert validate_cpr(given_value) == digits
    assert cpr_birth_date(given_value) == born


@pytest.mark.parametrize(
    ("cpr", "born_in"),
    [
        pytest.param("0101000000", 1900, id="7th-digit-0-means-1900s"),
        pytest.param("0101993999", 1999, id="7th-digit-3-means-1900s"),
        pytest.param("0101364000", 2036, id="7th-digit-4-year-36-means-2000s"),
        pytest.param("0101374000", 1937, id="7th-digit-4-year-37-means-1900s"),
        pytest.param("0101369000", 2036, id="7th-digit-9-year-36-means-2000s"),
        pytest.param("0101379999", 1937, id="7th-digit-9-year-37-means-1900s"),
        pytest.param("0101575000", 2057, id="7th-digit-5-year-57-means-2000s"),
        pytest.param("0101585000", 1858, id="7th-digit-5-year-58-means-1800s"),
        pytest.param("0101578999", 2057, id="7th-digit-8-year-57-means-2000s"),
        pytest.param("0101998999", 1899, id="7th-digit-8-year-99-means-1800s"),
    ],
)
def test_the_century_of_a_cpr_comes_from_its_7th_digit_and_year(cpr: str, born_in: int):
    assert cpr_birth_date(cpr) == datetime.date(born_in, 1, 1)


@pytest.mark.parametrize(
    "given_value",
    [
        pytest.param("3102991234", id="31-february"),
        pytest.param("3104991234", id="31-april"),
        pytest.param("2902011234", id="29-february-1901-not-a-leap-year"),
        pytest.param("2902014234", id="29-february-2001-not-a-leap-year"),
        pytest.param("2902000000", id="29-february-1900-not-a-leap-year-though-2000-is"),
        pytest.param("0001991234", id="day-0"),
        pytest.param("3201991234", id="day-32"),
        pytest.param("0100991234", id="month-0"),
        pytest.param("0113991234", id="month-13"),
        pytest.param("310299-1234", id="31-february-with-dash"),
    ],
)
def test_a_cpr_whose_first_six_digits_are_no_real_date_is_rejected(given_value: str):
    with pytest.raises(InvalidInput, match="must be a real birth date DDMMYY") as caught:
        validate_cpr(given_value)
    assert caught.value.field == "cpr"


@pytest.mark.parametrize(
    "given_value",
    [
        pytest.param("070761428", id="9-digits"),
        pytest.param("07076142851", id="11-digits"),
        pytest.param("07076-14285", id="dash-in-the-wrong-place"),
        pytest.param("070761--4285", id="two-dashes"),
        pytest.param("070761 4285", id="space-instead-of-dash"),
        pytest.param("07O7614285", id="letter-o-for-zero"),
        pytest.param("", id="empty"),
    ],
)
def test_a_cpr_not_shaped_ddmmyyssss_is_rejected(given_value: str):
    with pytest.raises(InvalidInput) as caught:
        validate_cpr(given_value)
    assert caught.value.message == (
        "cpr: must be ten digits DDMMYYSSSS (a dash after the date is allowed)"
    )


@pytest.mark.parametrize(
    "cpr",
    [
        pytest.param("0101001000", id="born-1900"),
        pytest.param("0107601234", id="born-1960"),
        pytest.param("0101004001", id="born-2000"),
    ],
)
def test_a_valid_cpr_failing_modulus_11_is_accepted(cpr: str):
    # Issued since 1 October 2007: rejecting these would turn real people away.
    assert not cpr_passes_modulus11(cpr)
    assert validate_cpr(cpr) == cpr


def test_modulus_11_is_reported_for_a_cpr_that_passes_it():
    assert cpr_passes_modulus11("0707614285")
    assert cpr_passes_modulus11("070761-4285")


@pytest.mark.parametrize(
    "given_value",
    [
        pytest.param("3102991234", id="bad-date"),
        pytest.param("310299-1234", id="bad-date-with-dash"),
        pytest.param("07076142851", id="too-long"),
        pytest.param("0707614285x", id="trailing-letter"),
        pytest.param("cpr 0707614285", id="prefixed"),
    ],
)
def test_a_cpr_error_never_contains_the_number(given_value: str):
    with pytest.raises(InvalidInput) as caught:
        validate_cpr(given_value)
    error = caught.value
    shown = f"{error} {error.to_dict()}"
    assert not any(character.isdigit() for character in shown)
    assert error.__cause__ is None


def test_the_cpr_helpers_reject_an_invalid_cpr_like_the_validator():
    with pytest.raises(InvalidInput, match="real birth date"):
        cpr_birth_date("3102991234")
    with pytest.raises(InvalidInput, match="ten digits"):
        cpr_passes_modulus11("123")


# --- Kommunekode ----------------------------------------------------------------------------


def test_there_are_exactly_98_municipalities_all_with_3_digit_codes():
    assert len(MUNICIPALITIES) == 98
    assert all(len(code) == 3 and code.isascii() and code.isdigit() for code in MUNICIPALITIES)
    assert len(set(MUNICIPALITIES.values())) == 98


@pytest.mark.parametrize(
    ("code", "name"),
    [
        pytest.param("101", "København", id="københavn"),
        pytest.param("147", "Frederiksberg", id="frederiksberg"),
        pytest.param("400", "Bornholm", id="bornholm"),
        pytest.param("461", "Odense", id="odense"),
        pytest.param("492", "Ærø", id="ærø"),
        pytest.param("751", "Aarhus", id="aarhus"),
        pytest.param("825", "Læsø", id="læsø"),
        pytest.param("851", "Aalborg", id="aalborg"),
        pytest.param("860", "Hjørring", id="hjørring-highest-code"),
    ],
)
def test_known_kommunekoder_are_accepted_and_named(code: str, name: str):
    assert validate_municipality(code) == code
    assert municipality_name(code) == name


@pytest.mark.parametrize(
    "given_value",
    [
        pytest.param("411", id="christiansø-is-no-municipality"),
        pytest.param("100", id="unused-code"),
        pytest.param("999", id="out-of-range"),
        pytest.param("000", id="zeros"),
    ],
)
def test_a_3_digit_code_of_no_municipality_is_rejected(given_value: str):
    with pytest.raises(InvalidInput, match="not the kommunekode of any of the 98") as caught:
        validate_municipality(given_value)
    assert caught.value.field == "municipality"


@pytest.mark.parametrize(
    "given_value",
    [
        pytest.param("0101", id="four-digit-form-of-CPR-and-DAWA"),
        pytest.param("10", id="two-digits"),
        pytest.param("København", id="a-name"),
    ],
)
def test_a_kommunekode_must_be_3_digits(given_value: str):
    with pytest.raises(InvalidInput, match="must be a kommunekode of 3 digits"):
        validate_municipality(given_value)


def test_municipality_name_of_an_unknown_code_is_invalid_input_not_key_error():
    with pytest.raises(InvalidInput):
        municipality_name("411")


def test_every_municipality_has_valid_postcodes_for_the_data_generator():
    assert MUNICIPALITY_POSTCODES.keys() == MUNICIPALITIES.keys()
    for code, postcodes in MUNICIPALITY_POSTCODES.items():
        assert postcodes, code
        assert all(validate_postcode(postcode) == postcode for postcode in postcodes), code


@pytest.mark.parametrize(
    ("code", "postcode"),
    [
        pytest.param("101", "1050", id="københavn-k"),
        pytest.param("147", "2000", id="frederiksberg"),
        pytest.param("461", "5000", id="odense-c"),
        pytest.param("751", "8000", id="aarhus-c"),
        pytest.param("851", "9000", id="aalborg"),
        pytest.param("400", "3700", id="rønne"),
    ],
)
def test_the_main_towns_postcode_comes_first(code: str, postcode: str):
    assert MUNICIPALITY_POSTCODES[code][0] == postcode


# --- Postcode -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_value", "expected"),
    [
        pytest.param("8000", "8000", id="aarhus-c"),
        pytest.param("0800", "0800", id="leading-zero"),
        pytest.param("9990", "9990", id="skagen"),
        pytest.param(" 2100 ", "2100", id="surrounding-blanks-dropped"),
    ],
)
def test_a_postcode_is_4_digits(given_value: str, expected: str):
    assert validate_postcode(given_value) == expected


@pytest.mark.parametrize(
    "given_value",
    [
        pytest.param("800", id="3-digits"),
        pytest.param("80000", id="5-digits"),
        pytest.param("0000", id="all-zeros"),
        pytest.param("8OOO", id="letter-o"),
        pytest.param("DK-8000", id="country-prefix"),
        pytest.param("8000 Aarhus C", id="with-town"),
    ],
)
def test_a_postcode_that_is_not_4_digits_is_rejected(given_value: str):
    with pytest.raises(InvalidInput, match="postcode: must be a postcode of 4 digits") as caught:
        validate_postcode(given_value)
    assert caught.value.field == "postcode"


# --- Every validator ------------------------------------------------------------------------


@pytest.mark.parametrize(("validator", "field"), VALIDATORS)
@pytest.mark.parametrize(
    "not_a_string",
    [
        pytest.param(None, id="none"),
        pytest.param(10150817, id="int"),
        pytest.param(8000.0, id="float"),
        pytest.param(b"8000", id="bytes"),
        pytest.param(["101"], id="list"),
    ],
)
def test_a_value_that_is_not_a_string_is_invalid_input_not_type_error(
    validator: Validator, field: str, not_a_string: Any
):
    with pytest.raises(InvalidInput, match=f"^{field}: must be a string") as caught:
        validator(not_a_string, field)
    assert caught.value.field == field


# --- Properties -----------------------------------------------------------------------------

#: Text that is sometimes well-formed, so that properties reach the deeper checks too.
_IDENTIFIER_LIKE = st.one_of(
    st.text(),
    st.from_regex(r"\s?[0-9]{1,11}\s?", fullmatch=True),
    st.from_regex(r"[0-9]{6}-[0-9]{4}", fullmatch=True),
)


def _outcome(validator: Validator, value: str, field: str) -> str | InvalidInput:
    """The validator's result, or the InvalidInput it raised; any other exception escapes."""
    try:
        return validator(value, field)
    except InvalidInput as error:
        return error


@pytest.mark.parametrize(("validator", "field"), VALIDATORS)
@settings(deadline=None)
@given(value=_IDENTIFIER_LIKE)
def test_any_string_is_normalized_or_invalid_input(validator: Validator, field: str, value: str):
    outcome = _outcome(validator, value, field)
    if isinstance(outcome, InvalidInput):
        assert outcome.field == field
        assert outcome.message.startswith(f"{field}: ")
    else:
        # The normal form is ASCII digits only, and normalizing it again changes nothing.
        assert outcome.isascii()
        assert outcome.isdigit()
        assert validator(outcome, field) == outcome


@settings(deadline=None)
@given(value=_IDENTIFIER_LIKE)
def test_a_cpr_error_message_never_contains_the_digits_given(value: str):
    outcome = _outcome(validate_cpr, value, "cpr")
    if isinstance(outcome, InvalidInput):
        digits_given = "".join(character for character in value if character.isdigit())
        assert digits_given == "" or digits_given not in outcome.message
        # Stronger, and what makes the above hold: a CPR message contains no digit at all.
        assert not any(character.isdigit() for character in outcome.message)


#: The CPR office's century table as (first year, last year, allowed 7th digits).
_CENTURY_TABLE: list[tuple[int, int, str]] = [
    (1858, 1899, "5678"),
    (1900, 1936, "0123"),
    (1937, 1999, "01234" + "9"),
    (2000, 2036, "456789"),
    (2037, 2057, "5678"),
]


@st.composite
def _cpr_for(draw: st.DrawFn) -> tuple[str, datetime.date]:
    born = draw(st.dates(datetime.date(1858, 1, 1), datetime.date(2057, 12, 31)))
    sevenths = next(digits for first, last, digits in _CENTURY_TABLE if first <= born.year <= last)
    serial = draw(st.sampled_from(sevenths)) + draw(st.from_regex(r"[0-9]{3}", fullmatch=True))
    return born.strftime("%d%m%y") + serial, born


@settings(deadline=None)
@given(cpr_and_date=_cpr_for())
def test_every_birth_date_with_a_fitting_serial_is_a_valid_cpr(
    cpr_and_date: tuple[str, datetime.date],
):
    cpr, born = cpr_and_date
    assert validate_cpr(cpr) == cpr
    assert validate_cpr(f"{cpr[:6]}-{cpr[6:]}") == cpr
    assert cpr_birth_date(cpr) == born
