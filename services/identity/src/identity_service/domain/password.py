"""Password rules (密码规则) for candidate and staff accounts; hashing is an adapter's job."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from identity_service.domain.errors import DomainError

MIN_LENGTH = 8
MAX_LENGTH = 64
# The most common choices that still pass the character rules; refused outright.
COMMON = frozenset(
    {
        "password1", "password123", "passw0rd", "p@ssw0rd", "p@ssword1", "qwerty123",
        "abc12345", "abcd1234", "a1234567", "aa123456", "zxcvbnm1", "qwer1234", "1qaz2wsx",
        "1q2w3e4r", "woaini1314", "admin123", "iloveyou1", "asdf1234", "qwertyuiop1",
    }
)  # fmt: skip


class WeakPassword(DomainError):
    """The password breaks a rule; the message says which, in Chinese."""

    code = "identity.password_weak"
    field = "password"


def character_classes(password: str) -> int:
    """How many of lower case, upper case, digits and symbols the password uses."""
    return sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )


def normalise_password(password: str) -> str:
    """The form a password is hashed and verified in: NFKC, so a full-width ＡＢＣ１ typed by a
    Chinese input method is the same password as ABC1."""
    return unicodedata.normalize("NFKC", password)


def check_password(password: str, personal: Iterable[str] = ()) -> str:
    """The password normalised (NFKC) if it meets the rules; raises WeakPassword otherwise.

    Rules: 8-64 characters, printable ASCII only (what every keyboard and input method types the
    same way), at least three of the four character classes, not a well-known password, and not
    containing the ID number, ticket number, birth date or mobile number given in `personal`.
    """
    normalised = normalise_password(password)
    if not MIN_LENGTH <= len(normalised) <= MAX_LENGTH:
        raise WeakPassword(
            f"密码长度应为{MIN_LENGTH}至{MAX_LENGTH}位", f"length must be {MIN_LENGTH}-{MAX_LENGTH}"
        )
    if not all(" " < c <= "~" for c in normalised):
        raise WeakPassword(
            "密码只能包含英文字母、数字和常用符号，不能含空格或中文", "non-ASCII or space"
        )
    if character_classes(normalised) < 3:
        raise WeakPassword(
            "密码须包含大写字母、小写字母、数字、符号中的至少三种", "fewer than three classes"
        )
    lowered = normalised.lower()
    if lowered in COMMON:
        raise WeakPassword("密码过于常见，请换一个", "a well-known password")
    for item in personal:
        piece = item.strip().lower()
        if len(piece) >= 6 and piece in lowered:
            raise WeakPassword("密码不能包含身份证号、准考证号、出生日期或手机号", "personal data")
    return normalised
