"""The bound on argon2id hashes in flight, and passwords normalised the same way everywhere."""

from __future__ import annotations

import asyncio
import threading

import pytest
from argon2 import PasswordHasher

from identity_service.adapters.passwords import PasswordHashingBusy, Passwords, default_limit

pytestmark = pytest.mark.unit

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)  # fast, same algorithm


class GatedHasher(PasswordHasher):
    """Hashes only once the test opens the gate; counts the hashes running at once."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)
        self._lock = threading.Lock()
        self.running = 0
        self.most = 0

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        self.started.release()
        try:
            self.gate.wait(timeout=10)
            return super().hash(password, salt=salt)
        finally:
            with self._lock:
                self.running -= 1


@pytest.mark.parametrize(
    ("cores", "memory", "limit"),
    [
        (8, 64 * 2**30, 8),  # plenty of memory: the cores bound it
        (16, 1 * 2**30, 4),  # a 1 GiB pod: a quarter of it holds four 64 MiB hashes
        (4, 100 * 2**20, 1),  # never below one
        (1, 64 * 2**30, 1),
    ],
)
def test_the_default_limit_follows_cores_and_memory(cores: int, memory: int, limit: int) -> None:
    assert default_limit(cores=cores, memory_bytes=memory, hash_bytes=64 * 2**20) == limit


def test_the_default_limit_of_this_machine_is_sane() -> None:
    assert 1 <= default_limit() <= (len(__import__("os").sched_getaffinity(0)))


async def test_the_bound_holds_under_concurrency() -> None:
    hasher = GatedHasher()
    passwords = Passwords(limit=2, wait_seconds=30, hasher=hasher)
    tasks = [asyncio.create_task(passwords.hash(f"Zikao#{i:04d}")) for i in range(10)]
    for _ in range(2):
        await asyncio.to_thread(hasher.started.acquire)
    await asyncio.sleep(0.05)
    assert passwords.in_flight == 2 and hasher.running == 2, "the rest wait for a slot"
    hasher.gate.set()
    hashes = await asyncio.gather(*tasks)
    assert len(set(hashes)) == 10
    assert hasher.most == 2 and passwords.peak == 2 and passwords.in_flight == 0


async def test_overflow_waits_briefly_then_is_refused_as_busy() -> None:
    hasher = GatedHasher()
    passwords = Passwords(limit=1, wait_seconds=0.05, hasher=hasher)
    first = asyncio.create_task(passwords.hash("Zikao#2026"))
    await asyncio.to_thread(hasher.started.acquire)
    with pytest.raises(PasswordHashingBusy) as refused:
        await passwords.verify(None, "Zikao#2026")
    assert refused.value.status == 503 and refused.value.retry_after
    assert refused.value.code == "identity.busy" and refused.value.message == "系统繁忙，请稍后重试"
    hasher.gate.set()
    stored = await first
    assert await passwords.verify(stored, "Zikao#2026"), "a freed slot serves the next one"


@pytest.mark.parametrize(
    ("registered", "typed"),
    [
        ("Ｚｉｋａｏ＃２０２６", "Ｚｉｋａｏ＃２０２６"),  # full width at both ends
        ("Ｚｉｋａｏ＃２０２６", "Zikao#2026"),
        ("Zikao#2026", "Ｚｉｋａｏ＃２０２６"),
    ],
)
async def test_passwords_are_normalised_alike_when_hashed_and_verified(
    registered: str, typed: str
) -> None:
    passwords = Passwords(limit=1, hasher=CHEAP)
    stored = await passwords.hash(registered)
    assert await passwords.verify(stored, typed)
    assert not await passwords.verify(stored, "Zikao#2027")
    assert not await passwords.verify(None, typed), "no account never matches"
