"""Failed-login counters in PostgreSQL: atomic, shared by every API replica, self-expiring."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from eventkit.db import Conn
from identity_service.domain.throttle import ThrottlePolicy, ThrottleRule

_RECORD_FAILURE = """
INSERT INTO identity.login_throttle AS t (key, failures, window_started, locked_until)
VALUES ($1, 1, now(), CASE WHEN $2 <= 1 THEN now() + $4 ELSE NULL END)
ON CONFLICT (key) DO UPDATE SET
    failures = CASE WHEN t.window_started + $3 < now() OR t.locked_until < now()
                    THEN 1 ELSE t.failures + 1 END,
    window_started = CASE WHEN t.window_started + $3 < now() OR t.locked_until < now()
                          THEN now() ELSE t.window_started END,
    locked_until = CASE
        WHEN t.locked_until > now() THEN t.locked_until
        WHEN (CASE WHEN t.window_started + $3 < now() OR t.locked_until < now()
                   THEN 1 ELSE t.failures + 1 END) >= $2 THEN now() + $4
        ELSE NULL END
RETURNING failures, locked_until
"""

_LOCKED = """
SELECT extract(epoch FROM max(locked_until) - now())::float8
FROM identity.login_throttle WHERE key = ANY($1::text[]) AND locked_until > now()
"""


@dataclass(frozen=True)
class Lock:
    """A lock in force: seconds until it ends by itself."""

    seconds_left: float


class LoginThrottle:
    """Counts failed logins per account key and per client address; locks past the limits."""

    def __init__(
        self, pool: asyncpg.Pool, policy: ThrottlePolicy | None = None, *, namespace: str = ""
    ) -> None:
        self._pool = pool
        self._policy = policy or ThrottlePolicy()
        self._namespace = namespace  # "" for logins; registration counts apart ("reg:")

    def keys(self, account_key: str, client: str) -> tuple[str, str]:
        """The two counters an attempt touches."""
        return f"{self._namespace}acct:{account_key}", f"{self._namespace}ip:{client}"

    async def lock_in_force(self, account_key: str, client: str) -> Lock | None:
        """The longest lock on either counter, if one is in force now."""
        async with self._pool.acquire() as conn:
            seconds = await conn.fetchval(_LOCKED, list(self.keys(account_key, client)))
        return None if seconds is None else Lock(float(seconds))

    async def record_failure(self, account_key: str, client: str) -> Lock | None:
        """Count one failure on both counters; returns the lock it caused or that was in force."""
        account, address = self.keys(account_key, client)
        async with self._pool.acquire() as conn, conn.transaction():
            for key, rule in ((account, self._policy.account), (address, self._policy.client)):
                await _count(conn, key, rule)
            seconds = await conn.fetchval(_LOCKED, [account, address])
        return None if seconds is None else Lock(float(seconds))

    async def record_success(self, account_key: str) -> None:
        """A successful login clears the account's counter (not the address's)."""
        async with self._pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM identity.login_throttle WHERE key = $1",
                self.keys(account_key, "")[0],
            )

    async def sweep(self, older_than: timedelta = timedelta(days=1)) -> int:
        """Delete counters idle for longer than `older_than`; returns how many."""
        async with self._pool.acquire() as conn:
            result = await conn.execute(
                "DELETE FROM identity.login_throttle WHERE window_started < now() - $1::interval"
                " AND (locked_until IS NULL OR locked_until < now())",
                older_than,
            )
        return int(result.split()[-1])


async def _count(conn: Conn, key: str, rule: ThrottleRule) -> None:
    await conn.fetchrow(_RECORD_FAILURE, key, rule.max_failures, rule.window, rule.lockout)
