"""Test support for other services' and end-to-end tests: answer identity's captchas.

A captcha's answer is stored only as a keyed hash; with the wired service (its secret) a test
finds the answer by trying the 390,625 four-character answers (well under a second). Never used
by the service itself.
"""

from __future__ import annotations

import itertools
import uuid

from identity_service.adapters.captcha import ALPHABET, LENGTH
from identity_service.bootstrap import Identity


async def captcha_answer(identity: Identity, captcha_id: uuid.UUID | str) -> str:
    """The answer of a live captcha (AssertionError when there is none)."""
    key = uuid.UUID(str(captcha_id))
    async with identity.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT answer_hash FROM identity.captchas WHERE id = $1", key)
    assert stored is not None, f"no captcha {key}"
    for chars in itertools.product(ALPHABET, repeat=LENGTH):
        answer = "".join(chars)
        if identity.captchas._hash(key, answer) == bytes(stored):
            return answer
    raise AssertionError(f"captcha {key} has no answer in the alphabet")
