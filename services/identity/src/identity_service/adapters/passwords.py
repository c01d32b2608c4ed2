"""Password hashing with argon2id, off the event loop."""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified when the account does not exist, so a miss takes as long as a wrong password.
_DUMMY = _HASHER.hash("not-a-real-password-only-for-timing")


async def hash_password(password: str) -> str:
    """An argon2id hash (with its salt and parameters) of the password."""
    return await asyncio.to_thread(_HASHER.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    """True when `password` matches `stored`; a missing account costs the same as a mismatch."""
    try:
        return await asyncio.to_thread(_HASHER.verify, stored or _DUMMY, password) and (
            stored is not None
        )
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
