"""Captchas and login throttling on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import timedelta

import asyncpg
import pytest
from PIL import Image

from identity_service.adapters.captcha import ALPHABET, CaptchaProblem, CaptchaStore, draw
from identity_service.adapters.throttle import LoginThrottle
from identity_service.domain.throttle import ThrottlePolicy, ThrottleRule, minutes_left

SECRET = b"test-captcha-secret-0123456789ab"


async def answer_of(pool: asyncpg.Pool, store: CaptchaStore, captcha_id: uuid.UUID) -> str:
    """Find the answer by trying the alphabet against the stored hash (tests only)."""
    import itertools

    async with pool.acquire() as conn:
        stored = bytes(
            await conn.fetchval(
                "SELECT answer_hash FROM identity.captchas WHERE id = $1", captcha_id
            )
        )
    for chars in itertools.product(ALPHABET, repeat=4):
        text = "".join(chars)
        if store._hash(captcha_id, text) == stored:
            return text
    raise AssertionError("no answer found")


@pytest.mark.unit
def test_captcha_images_are_pngs_of_the_right_size() -> None:
    image = Image.open(io.BytesIO(draw("K7PX")))
    assert image.format == "PNG"
    assert image.size == (120, 44)


@pytest.mark.integration
async def test_a_captcha_is_one_time_and_case_insensitive(identity_pool: asyncpg.Pool) -> None:
    store = CaptchaStore(identity_pool, SECRET)
    captcha = await store.issue()
    assert Image.open(io.BytesIO(captcha.png)).format == "PNG"
    answer = await answer_of(identity_pool, store, captcha.captcha_id)
    assert await store.check(captcha.captcha_id, f" {answer.lower()} ") is None
    assert await store.check(captcha.captcha_id, answer) == CaptchaProblem.USED


@pytest.mark.integration
async def test_a_wrong_answer_spends_the_captcha(identity_pool: asyncpg.Pool) -> None:
    store = CaptchaStore(identity_pool, SECRET)
    captcha = await store.issue()
    answer = await answer_of(identity_pool, store, captcha.captcha_id)
    wrong = "".join(next(c for c in ALPHABET if c != a) for a in answer)
    assert await store.check(captcha.captcha_id, wrong) == CaptchaProblem.WRONG
    assert await store.check(captcha.captcha_id, answer) == CaptchaProblem.USED


@pytest.mark.integration
async def test_expired_and_unknown_captchas_are_refused(identity_pool: asyncpg.Pool) -> None:
    store = CaptchaStore(identity_pool, SECRET, ttl=timedelta(milliseconds=1))
    captcha = await store.issue()
    await asyncio.sleep(0.01)
    assert await store.check(captcha.captcha_id, "AAAA") == CaptchaProblem.EXPIRED
    assert await store.check(uuid.uuid4(), "AAAA") == CaptchaProblem.UNKNOWN


@pytest.mark.integration
async def test_concurrent_checks_accept_a_captcha_once(identity_pool: asyncpg.Pool) -> None:
    store = CaptchaStore(identity_pool, SECRET)
    captcha = await store.issue()
    answer = await answer_of(identity_pool, store, captcha.captcha_id)
    results = await asyncio.gather(*(store.check(captcha.captcha_id, answer) for _ in range(10)))
    assert results.count(None) == 1
    assert results.count(CaptchaProblem.USED) == 9


@pytest.mark.integration
async def test_lockout_is_reached_and_ends_by_itself(identity_pool: asyncpg.Pool) -> None:
    policy = ThrottlePolicy(
        account=ThrottleRule(3, timedelta(minutes=5), timedelta(milliseconds=400)),
        client=ThrottleRule(100, timedelta(minutes=5), timedelta(minutes=5)),
    )
    throttle = LoginThrottle(identity_pool, policy)
    assert await throttle.lock_in_force("a1", "10.0.0.1") is None
    assert await throttle.record_failure("a1", "10.0.0.1") is None
    assert await throttle.record_failure("a1", "10.0.0.1") is None
    lock = await throttle.record_failure("a1", "10.0.0.1")
    assert lock is not None and 0 < lock.seconds_left <= 0.4
    assert await throttle.lock_in_force("a1", "10.0.0.2") is not None, "the account is locked"
    assert await throttle.lock_in_force("a2", "10.0.0.1") is None, "other accounts are not"
    await asyncio.sleep(0.5)
    assert await throttle.lock_in_force("a1", "10.0.0.1") is None
    assert await throttle.record_failure("a1", "10.0.0.1") is None, "a fresh window after the lock"


@pytest.mark.integration
async def test_a_client_address_is_locked_across_accounts(identity_pool: asyncpg.Pool) -> None:
    policy = ThrottlePolicy(
        account=ThrottleRule(100, timedelta(minutes=5), timedelta(minutes=5)),
        client=ThrottleRule(5, timedelta(minutes=5), timedelta(minutes=10)),
    )
    throttle = LoginThrottle(identity_pool, policy)
    await asyncio.gather(*(throttle.record_failure(f"acct{i}", "10.9.9.9") for i in range(5)))
    lock = await throttle.lock_in_force("someone-else", "10.9.9.9")
    assert lock is not None and lock.seconds_left > 500
    assert minutes_left(lock.seconds_left) == 10


@pytest.mark.integration
async def test_success_clears_the_account_counter(identity_pool: asyncpg.Pool) -> None:
    policy = ThrottlePolicy(
        account=ThrottleRule(2, timedelta(minutes=5), timedelta(minutes=5)),
        client=ThrottleRule(100, timedelta(minutes=5), timedelta(minutes=5)),
    )
    throttle = LoginThrottle(identity_pool, policy)
    await throttle.record_failure("a1", "10.0.0.1")
    await throttle.record_success("a1")
    assert await throttle.record_failure("a1", "10.0.0.1") is None


@pytest.mark.unit
@pytest.mark.parametrize(("seconds", "minutes"), [(0.2, 1), (60, 1), (61, 2), (899, 15)])
def test_minutes_left_rounds_up(seconds: float, minutes: int) -> None:
    assert minutes_left(seconds) == minutes
