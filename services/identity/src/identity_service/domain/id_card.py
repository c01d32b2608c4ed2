"""居民身份证号码 (GB 11643-1999): parsing, checksum, birth date, region, gender, masking."""

from __future__ import annotations

import operator
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date

from contracts.identity import Gender
from identity_service.domain.errors import DomainError

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_DIGITS = "10X98765432"
PROVINCE_CODES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
)
EARLIEST_BIRTH_DATE = date(1900, 1, 1)

_SHAPE = re.compile(r"^\d{17}[\dX]$")


class InvalidIdNumber(DomainError):
    """身份证号无效: malformed, wrong check digit, or an impossible birth date."""

    field = "id_number"


def _malformed(detail: str) -> InvalidIdNumber:
    return InvalidIdNumber(
        "身份证号格式不正确：应为18位，前17位为数字，最后一位为数字或X",
        f"ID-card number malformed: {detail}",
        code="identity.id_number_malformed",
    )


def check_digit(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    if len(first17) != len(WEIGHTS):
        raise ValueError("the check digit needs exactly 17 digits")
    return CHECK_DIGITS[sum(map(operator.mul, map(int, first17), WEIGHTS)) % 11]


def normalise_id_text(text: str) -> str:
    """Strip, fold full-width characters (NFKC) and upper-case a trailing x."""
    return unicodedata.normalize("NFKC", text).strip().upper()


@dataclass(frozen=True, repr=False)
class IdCardNumber:
    """A valid 18-character resident ID-card number. `repr`/`str` show only the masked form."""

    value: str = field(compare=True)

    @classmethod
    def parse(cls, text: str, *, today: date | None = None) -> IdCardNumber:
        """Parse and validate; raises InvalidIdNumber with a stable code."""
        result = cls.check(text, today=today)
        if isinstance(result, InvalidIdNumber):
            raise result
        return result

    @classmethod
    def check(cls, text: str, *, today: date | None = None) -> IdCardNumber | InvalidIdNumber:
        """Parse and validate, returning the error as a value instead of raising it."""
        value = normalise_id_text(text)
        if len(value) != 18:
            return _malformed(f"length {len(value)}, expected 18")
        if not _SHAPE.match(value) or not value.isascii():
            return _malformed("first 17 must be digits, the last a digit or X")
        if int(value[:2]) not in PROVINCE_CODES:
            return _malformed(f"unknown province code {value[:2]}")
        birth = _birth_date(value)
        limit = today if today is not None else date.today()
        if birth is None or not EARLIEST_BIRTH_DATE <= birth <= limit:
            return InvalidIdNumber(
                "身份证号中的出生日期无效",
                "ID-card number has an impossible birth date",
                code="identity.id_number_birth_date",
            )
        if check_digit(value[:17]) != value[17]:
            return InvalidIdNumber(
                "身份证号校验位不正确，请核对",
                "ID-card number check digit does not match",
                code="identity.id_number_checksum",
            )
        return cls(value)

    @property
    def masked(self) -> str:
        """Display form: the first four and last four characters, e.g. 1401**********123X."""
        return f"{self.value[:4]}{'*' * 10}{self.value[-4:]}"

    @property
    def birth_date(self) -> date:
        """出生日期 encoded in digits 7-14."""
        birth = _birth_date(self.value)
        assert birth is not None
        return birth

    @property
    def gender(self) -> Gender:
        """性别 from the 17th digit: odd is male, even female."""
        return Gender.MALE if int(self.value[16]) % 2 == 1 else Gender.FEMALE

    @property
    def province_code(self) -> str:
        """The two-digit province (省级行政区) code."""
        return self.value[:2]

    def __repr__(self) -> str:
        return f"IdCardNumber({self.masked!r})"

    def __str__(self) -> str:
        return self.masked


def _birth_date(value: str) -> date | None:
    try:
        return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return None
