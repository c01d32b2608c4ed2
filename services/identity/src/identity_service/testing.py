"""Test support for other services' and end-to-end tests: identity's app in process, and the
answers to its captchas.

A captcha's answer is stored only as a keyed hash; with the wired service (its secret) a test
finds the answer by trying the 390,625 four-character answers (well under a second). Never used
by the service itself.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from identity_service.adapters.captcha import ALPHABET, LENGTH
from identity_service.bootstrap import Identity
from servicekit.auth import JwksClient, TokenVerifier
from servicekit.signing import IDENTITY_ISSUER

IDENTITY_URL = "http://identity"  # the base URL clients of `in_process` use


@asynccontextmanager
async def in_process(
    identity: Identity,
) -> AsyncIterator[tuple[httpx.ASGITransport, TokenVerifier]]:
    """Identity's real app on `identity`, reachable at IDENTITY_URL through the transport, and a
    verifier on its published JWKS (as deployed services verify tokens)."""
    from identity_service.entrypoints.api import attach, build_app

    app = build_app()
    attach(app, identity)
    transport = httpx.ASGITransport(app=app)
    jwks = httpx.AsyncClient(transport=transport, base_url=IDENTITY_URL)
    try:
        yield (
            transport,
            TokenVerifier(
                JwksClient(f"{IDENTITY_URL}/.well-known/jwks.json", http=jwks),
                issuer=IDENTITY_ISSUER,
            ),
        )
    finally:
        await jwks.aclose()


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
