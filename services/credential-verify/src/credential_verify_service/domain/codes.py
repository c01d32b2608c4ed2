"""在线验证码: parse and normalise a CHSI online verification code.

Only the shape is checked here; whether a well-formed code is unknown or expired only CHSI can
say (VerificationCodeUnknown / VerificationCodeExpired come from the adapter).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from credential_verify_service.domain.errors import VerificationCodeMalformed

CURRENT_CODE = re.compile(r"[0-9A-Z]{16}")
LEGACY_CODE = re.compile(r"[0-9]{12}")
_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―−]+")


@dataclass(frozen=True)
class VerificationCode:
    """A well-formed online verification code: 16 of 0-9A-Z (current) or 12 digits (older)."""

    value: str

    @property
    def is_legacy(self) -> bool:
        return len(self.value) == 12

    def __str__(self) -> str:
        return self.value


def normalise_verification_code(text: str) -> str:
    """Fold full-width characters, drop spaces and hyphens, upper-case."""
    folded = unicodedata.normalize("NFKC", text)
    return _SEPARATORS.sub("", folded).upper()


def parse_verification_code(text: str) -> VerificationCode:
    """Normalise and check the shape; raises VerificationCodeMalformed."""
    value = normalise_verification_code(text)
    if not value.isascii():
        raise VerificationCodeMalformed("the verification code holds non-ASCII characters")
    if CURRENT_CODE.fullmatch(value) or LEGACY_CODE.fullmatch(value):
        return VerificationCode(value)
    raise VerificationCodeMalformed(
        f"verification code of length {len(value)} is neither 16 of 0-9A-Z nor 12 digits"
    )
