"""居民身份证号码: checksum, birth date, region, gender and masking (GB 11643)."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.identity import Gender
from identity_service.domain.id_card import (
    PROVINCE_CODES,
    IdCardNumber,
    InvalidIdNumber,
    check_digit,
)

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 28)


@st.composite
def valid_numbers(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from(sorted(PROVINCE_CODES)))
    area = draw(st.integers(0, 9999))
    birth = draw(st.dates(date(1900, 1, 1), TODAY))
    sequence = draw(st.integers(0, 999))
    first17 = f"{province:02d}{area:04d}{birth:%Y%m%d}{sequence:03d}"
    return first17 + check_digit(first17)


@given(valid_numbers())
def test_any_valid_digits_with_their_check_digit_parse(text: str) -> None:
    number = IdCardNumber.parse(text, today=TODAY)
    assert number.value == text
    assert number.birth_date == date(int(text[6:10]), int(text[10:12]), int(text[12:14]))
    assert number.gender == (Gender.MALE if int(text[16]) % 2 else Gender.FEMALE)


@given(valid_numbers(), st.integers(0, 17), st.sampled_from("0123456789X"))
def test_changing_any_single_character_fails(text: str, position: int, char: str) -> None:
    if text[position] == char:
        return
    changed = text[:position] + char + text[position + 1 :]
    with pytest.raises(InvalidIdNumber):
        IdCardNumber.parse(changed, today=TODAY)


@given(valid_numbers())
def test_masking_never_shows_digits_5_to_14(text: str) -> None:
    number = IdCardNumber.parse(text, today=TODAY)
    assert number.masked[4:14] == "*" * 10
    assert number.masked[:4] == text[:4] and number.masked[14:] == text[14:]
    assert text not in repr(number) and text not in str(number)
    assert text[4:14] not in repr(number)


@pytest.mark.parametrize(
    "text",
    [
        "11010519491231002X",
        "11010519491231002x",
        " 11010519491231002X ",
        "１１０１０５１９４９１２３１００２Ｘ",  # full-width
        "440524200001010013",
    ],
)
def test_known_valid_numbers(text: str) -> None:
    number = IdCardNumber.parse(text, today=TODAY)
    assert number.value in {"11010519491231002X", "440524200001010013"}


def test_properties_of_a_known_number() -> None:
    number = IdCardNumber.parse("11010519491231002X", today=TODAY)
    assert number.masked == "1101**********002X"
    assert number.birth_date == date(1949, 12, 31)
    assert number.gender is Gender.FEMALE
    assert number.province_code == "11"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "identity.id_number_malformed"),
        ("11010519491231002", "identity.id_number_malformed"),
        ("11010519491231002X1", "identity.id_number_malformed"),
        ("1101051949123100XX", "identity.id_number_malformed"),
        ("11010519491231002Y", "identity.id_number_malformed"),
        ("99010519491231002X", "identity.id_number_malformed"),  # no province 99
        ("11010519491231002 ", "identity.id_number_malformed"),
        ("١١٠١٠٥١٩٤٩١٢٣١٠٠٢X", "identity.id_number_malformed"),  # Arabic-Indic digits
        ("110105194912310021", "identity.id_number_checksum"),
        ("110105194913310020", "identity.id_number_birth_date"),  # month 13
        ("110105189912310020", "identity.id_number_birth_date"),  # before 1900
        ("110105203012310020", "identity.id_number_birth_date"),  # in the future
    ],
)
def test_known_invalid_numbers(text: str, code: str) -> None:
    result = IdCardNumber.check(text, today=TODAY)
    assert isinstance(result, InvalidIdNumber)
    assert result.code == code
    assert result.message and result.detail_en
    assert text.strip() not in result.message + result.detail_en or not text.strip()


def test_birth_date_error_wins_even_with_the_right_check_digit() -> None:
    first17 = "11010519490230002"  # 30 February
    result = IdCardNumber.check(first17 + check_digit(first17), today=TODAY)
    assert isinstance(result, InvalidIdNumber)
    assert result.code == "identity.id_number_birth_date"
