"""Token signing keys: Ed25519, private halves sealed at rest, rotated, published as a JWKS."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from eventkit.db import Conn
from identity_service.adapters.pii import PiiCipher
from servicekit.auth import parse_jwks
from servicekit.signing import Ed25519KeyPair

_PURPOSE = "signing_key"


@dataclass(frozen=True)
class PublishedKey:
    """A public key in the JWKS, and whether it still signs."""

    kid: str
    jwk: dict[str, str]
    retired_at: datetime | None


def new_kid(now: datetime | None = None) -> str:
    """A key id that sorts by creation time and never repeats."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return f"{stamp}-{secrets.token_hex(3)}"


class SigningKeys:
    """The newest unretired key signs; retired keys stay published for a grace period.

    Every API replica re-reads the current key at most every `refresh_seconds`, so a rotation
    reaches all replicas within that time; tokens signed meanwhile verify against either key.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        cipher: PiiCipher,
        *,
        publish_grace: timedelta = timedelta(hours=1),
        refresh_seconds: float = 30.0,
    ) -> None:
        self._pool = pool
        self._cipher = cipher
        self._grace = publish_grace
        self._refresh = refresh_seconds
        self._current: Ed25519KeyPair | None = None
        self._loaded_at = 0.0

    async def rotate(self) -> str:
        """Create a new signing key and retire the others; returns the new kid."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE identity.signing_keys IN SHARE ROW EXCLUSIVE MODE")
            return await self._create(conn)

    async def ensure_key(self) -> str:
        """Make sure a signing key exists (first start, also when replicas race); the kid."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("LOCK TABLE identity.signing_keys IN SHARE ROW EXCLUSIVE MODE")
            kid = await conn.fetchval(
                "SELECT kid FROM identity.signing_keys WHERE retired_at IS NULL"
                " ORDER BY created_at DESC LIMIT 1"
            )
            return str(kid) if kid is not None else await self._create(conn)

    async def _create(self, conn: Conn) -> str:
        pair = Ed25519KeyPair.generate(new_kid())
        sealed = self._cipher.encrypt(pair.private_pem().decode("ascii"), _PURPOSE)
        await conn.execute(
            "UPDATE identity.signing_keys SET retired_at = now() WHERE retired_at IS NULL"
        )
        await conn.execute(
            "INSERT INTO identity.signing_keys (kid, private_key_encrypted, public_jwk)"
            " VALUES ($1, $2, $3)",
            pair.kid,
            sealed,
            pair.public_jwk(),
        )
        self._loaded_at = 0.0  # the next current() reads the committed key
        return pair.kid

    async def current(self) -> Ed25519KeyPair:
        """The key to sign with now."""
        if self._current is not None and time.monotonic() - self._loaded_at < self._refresh:
            return self._current
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT kid, private_key_encrypted FROM identity.signing_keys"
                " WHERE retired_at IS NULL ORDER BY created_at DESC LIMIT 1"
            )
        if row is None:
            await self.ensure_key()
            return await self.current()
        if self._current is None or self._current.kid != row["kid"]:
            pem = self._cipher.decrypt(bytes(row["private_key_encrypted"]), _PURPOSE)
            self._current = Ed25519KeyPair.from_pem(row["kid"], pem.encode("ascii"))
        self._loaded_at = time.monotonic()
        return self._current

    async def published(self) -> list[PublishedKey]:
        """Keys that verify tokens: the current ones and those retired within the grace period."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT kid, public_jwk, retired_at FROM identity.signing_keys"
                " WHERE retired_at IS NULL OR retired_at > now() - $1::interval"
                " ORDER BY created_at DESC",
                self._grace,
            )
        return [PublishedKey(r["kid"], r["public_jwk"], r["retired_at"]) for r in rows]

    async def jwks(self) -> dict[str, list[dict[str, str]]]:
        """The JWKS document served at /.well-known/jwks.json."""
        return {"keys": [key.jwk for key in await self.published()]}


class PublishedKeys:
    """Identity's own verifying keys for its API (a servicekit KeySource), cached briefly."""

    def __init__(self, keys: SigningKeys, *, refresh_seconds: float = 30.0) -> None:
        self._keys = keys
        self._refresh = refresh_seconds
        self._cache: dict[str, Ed25519PublicKey] = {}
        self._loaded_at = -1e9

    async def get(self, kid: str) -> Ed25519PublicKey | None:
        """The public key for `kid`; an unknown kid reloads at most every few seconds."""
        stale = time.monotonic() - self._loaded_at
        if stale > self._refresh or (kid not in self._cache and stale > 5.0):
            published = await self._keys.published()
            self._cache = parse_jwks({"keys": [key.jwk for key in published]})
            self._loaded_at = time.monotonic()
        return self._cache.get(kid)
