"""Password hashing with argon2id, off the event loop, with a bound on the hashes in flight.

Every argon2id hash or verification holds `memory_cost` KiB (64 MiB) and a core for tens of
milliseconds, so an unbounded burst of logins or registrations can exhaust a pod's memory and
starve everything else. `Passwords` lets at most `limit` run at once; a caller waits up to
`wait_seconds` for a slot and is then refused with `PasswordHashingBusy` (503 + Retry-After).

Passwords are NFKC-normalised (`domain.password.normalise_password`) before they are hashed and
before they are verified, so what registration stored and what login checks agree.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from prometheus_client import Counter, Gauge

from identity_service.domain.errors import DomainError
from identity_service.domain.password import normalise_password

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified when the account does not exist, so a miss takes as long as a wrong password.
_DUMMY = _HASHER.hash("not-a-real-password-only-for-timing")
# The share of the process's memory that password hashes in flight may hold at most.
MEMORY_SHARE = 0.25
RETRY_AFTER_SECONDS = 2

HASHES = Counter(
    "identity_password_hashes_total",
    "argon2id hashes and verifications started, by operation",
    ["operation"],
)
REFUSED = Counter(
    "identity_password_hashes_refused_total",
    "password hashes refused because every slot stayed busy (answered 503)",
)
IN_FLIGHT = Gauge("identity_password_hashes_in_flight", "argon2id hashes running now")


class PasswordHashingBusy(DomainError):
    """Every password-hashing slot stayed busy for the wait: the caller should retry shortly."""

    code = "identity.busy"
    status = 503
    retry_after = RETRY_AFTER_SECONDS

    def __init__(self) -> None:
        super().__init__("系统繁忙，请稍后重试", "every password-hashing slot is busy")


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def _memory_bytes() -> int | None:
    """The process's memory limit: the cgroup's (a pod's limit) or else the machine's."""
    for path in (
        Path("/sys/fs/cgroup/memory.max"),
        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
    ):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isascii() and text.isdecimal() and int(text) < 1 << 60:
            return int(text)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def default_limit(
    cores: int | None = None,
    memory_bytes: int | None = None,
    hash_bytes: int = _HASHER.memory_cost * 1024,
) -> int:
    """Hashes allowed in flight: no more than the cores, and no more than a quarter of the
    memory limit holds (at least one)."""
    cores = _cores() if cores is None else cores
    memory = _memory_bytes() if memory_bytes is None else memory_bytes
    by_memory = cores if memory is None else int(memory * MEMORY_SHARE) // hash_bytes
    return max(1, min(cores, by_memory))


class Passwords:
    """Hashes and verifies passwords, at most `limit` at once in this process."""

    def __init__(
        self,
        limit: int | None = None,
        wait_seconds: float = 3.0,
        *,
        hasher: PasswordHasher = _HASHER,
    ) -> None:
        self.limit = limit if limit is not None else default_limit()
        if self.limit < 1:
            raise ValueError("the password-hashing limit must be at least 1")
        self._wait = wait_seconds
        self._slots = asyncio.Semaphore(self.limit)
        self._hasher = hasher
        self._dummy = _DUMMY if hasher is _HASHER else None  # another hasher's: made on demand
        self.in_flight = 0
        self.peak = 0  # the most hashes ever in flight at once (for tests and benchmarks)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one hashing slot; PasswordHashingBusy when none frees up within the wait."""
        try:
            await asyncio.wait_for(self._slots.acquire(), self._wait)
        except TimeoutError:
            REFUSED.inc()
            raise PasswordHashingBusy() from None
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        IN_FLIGHT.inc()
        try:
            yield
        finally:
            self.in_flight -= 1
            IN_FLIGHT.dec()
            self._slots.release()

    async def hash(self, password: str) -> str:
        """An argon2id hash (with its salt and parameters) of the normalised password."""
        normalised = normalise_password(password)
        async with self.slot():
            HASHES.labels("hash").inc()
            return await asyncio.to_thread(self._hasher.hash, normalised)

    async def verify(self, stored: str | None, password: str) -> bool:
        """True when `password` (normalised) matches `stored`; a missing account costs the same
        as a mismatch."""
        normalised = normalise_password(password)
        async with self.slot():
            HASHES.labels("verify").inc()
            try:
                matches = await asyncio.to_thread(self._verify, stored, normalised)
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False
        return matches and stored is not None

    def _verify(self, stored: str | None, password: str) -> bool:
        if stored is None and self._dummy is None:
            self._dummy = self._hasher.hash("not-a-real-password-only-for-timing")
        return self._hasher.verify(stored or self._dummy or "", password)
