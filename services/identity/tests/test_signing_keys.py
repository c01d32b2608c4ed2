"""Signing keys on a real PostgreSQL: sealed at rest, rotation, JWKS grace period."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import asyncpg
import jwt
import pytest

from identity_service.adapters.pii import PiiCipher, PiiSettings
from identity_service.adapters.signing_keys import SigningKeys
from servicekit.signing import issue_token

pytestmark = pytest.mark.integration


def cipher() -> PiiCipher:
    return PiiCipher.from_settings(PiiSettings())


async def test_first_start_creates_one_key_even_when_racing(identity_pool: asyncpg.Pool) -> None:
    keys = [SigningKeys(identity_pool, cipher()) for _ in range(4)]
    kids = await asyncio.gather(*(k.ensure_key() for k in keys))
    assert len(set(kids)) == 1
    async with identity_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM identity.signing_keys") == 1
        sealed = bytes(
            await conn.fetchval("SELECT private_key_encrypted FROM identity.signing_keys")
        )
    assert b"PRIVATE KEY" not in sealed


async def test_rotation_signs_with_the_new_key_and_keeps_the_old_published(
    identity_pool: asyncpg.Pool,
) -> None:
    keys = SigningKeys(identity_pool, cipher(), refresh_seconds=0)
    old_kid = await keys.ensure_key()
    old = await keys.current()
    token = issue_token(old, subject="c1", kind="candidate", roles=["candidate"],
                        issuer="zikao-identity", ttl=timedelta(minutes=15))  # fmt: skip
    new_kid = await keys.rotate()
    assert new_kid != old_kid
    other_replica = SigningKeys(identity_pool, cipher(), refresh_seconds=0)
    assert (await other_replica.current()).kid == new_kid
    document = await keys.jwks()
    assert [k["kid"] for k in document["keys"]] == [new_kid, old_kid]
    old_jwk = next(k for k in document["keys"] if k["kid"] == old_kid)
    public = jwt.PyJWK(old_jwk)
    claims = jwt.decode(token, public.key, algorithms=["EdDSA"], audience="zikao")
    assert claims["sub"] == "c1"
    assert all("d" not in k for k in document["keys"]), "no private parts in the JWKS"


async def test_retired_keys_leave_the_jwks_after_the_grace_period(
    identity_pool: asyncpg.Pool,
) -> None:
    keys = SigningKeys(identity_pool, cipher(), publish_grace=timedelta(milliseconds=50))
    first = await keys.ensure_key()
    second = await keys.rotate()
    await asyncio.sleep(0.1)
    assert [k.kid for k in await keys.published()] == [second]
    assert first != second
