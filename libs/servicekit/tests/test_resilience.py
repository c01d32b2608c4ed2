"""RetryPolicy and CircuitBreaker with a fake clock and a fake sleep: every transition."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from servicekit.resilience import CircuitBreaker, CircuitOpen, CircuitState, RetryPolicy

pytestmark = pytest.mark.unit


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSleep:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Boom(Exception):
    pass


class Fatal(Exception):
    pass


def flaky(
    failures: int, exc: type[Exception] = Boom
) -> tuple[list[int], Callable[[], Awaitable[str]]]:
    calls: list[int] = []

    async def fn() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise exc("boom")
        return "ok"

    return calls, fn


# --- RetryPolicy -------------------------------------------------------------------------------


async def test_retry_returns_first_success_without_sleeping() -> None:
    sleep = FakeSleep()
    calls, fn = flaky(0)
    assert await RetryPolicy(sleep=sleep).run(fn) == "ok"
    assert len(calls) == 1
    assert sleep.calls == []


async def test_retry_retries_until_success_with_full_jitter_backoff() -> None:
    sleep = FakeSleep()
    policy = RetryPolicy(
        attempts=4, base_delay=1.0, multiplier=2.0, max_delay=3.0, sleep=sleep, random=lambda: 1.0
    )
    calls, fn = flaky(3)
    assert await policy.run(fn) == "ok"
    assert len(calls) == 4
    assert sleep.calls == [1.0, 2.0, 3.0]  # capped by max_delay


async def test_retry_jitter_scales_the_cap() -> None:
    sleep = FakeSleep()
    policy = RetryPolicy(
        attempts=3, base_delay=2.0, max_delay=10.0, sleep=sleep, random=lambda: 0.25
    )
    _, fn = flaky(2)
    await policy.run(fn)
    assert sleep.calls == [0.5, 1.0]


async def test_retry_gives_up_after_attempts_and_reraises_last() -> None:
    sleep = FakeSleep()
    calls, fn = flaky(10)
    with pytest.raises(Boom):
        await RetryPolicy(attempts=3, sleep=sleep).run(fn)
    assert len(calls) == 3
    assert len(sleep.calls) == 2


async def test_retry_does_not_retry_unlisted_exceptions() -> None:
    sleep = FakeSleep()
    calls, fn = flaky(5, Fatal)
    with pytest.raises(Fatal):
        await RetryPolicy(retry_on=(Boom,), sleep=sleep).run(fn)
    assert len(calls) == 1


async def test_retry_predicate_and_per_call_override() -> None:
    sleep = FakeSleep()
    policy = RetryPolicy(retry_if=lambda exc: False, sleep=sleep)
    calls, fn = flaky(1)
    with pytest.raises(Boom):
        await policy.run(fn)
    assert len(calls) == 1
    calls, fn = flaky(1)
    assert await policy.run(fn, retry_if=lambda exc: True) == "ok"
    assert len(calls) == 2


async def test_retry_never_retries_circuit_open() -> None:
    sleep = FakeSleep()
    calls: list[int] = []

    async def fn() -> str:
        calls.append(1)
        raise CircuitOpen("x", 5)

    with pytest.raises(CircuitOpen):
        await RetryPolicy(sleep=sleep).run(fn)
    assert len(calls) == 1


async def test_retry_single_attempt_means_no_retry() -> None:
    calls, fn = flaky(1)
    with pytest.raises(Boom):
        await RetryPolicy(attempts=1, sleep=FakeSleep()).run(fn)
    assert len(calls) == 1


def test_retry_policy_validates_parameters() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(base_delay=-1)
    with pytest.raises(ValueError, match="multiplier"):
        RetryPolicy(multiplier=0.5)
    with pytest.raises(ValueError, match="1-based"):
        RetryPolicy().backoff_cap(0)


def test_backoff_cap_survives_huge_exponents() -> None:
    assert RetryPolicy(max_delay=7.0, multiplier=10.0).backoff_cap(10_000) == 7.0


async def test_default_sleep_is_real_asyncio_sleep() -> None:
    calls, fn = flaky(1)
    assert await RetryPolicy(base_delay=0.0).run(fn) == "ok"
    assert len(calls) == 2


# --- CircuitBreaker ----------------------------------------------------------------------------


async def ok() -> str:
    return "ok"


async def fail() -> str:
    raise Boom("down")


def make_breaker(clock: FakeClock, **kwargs: object) -> CircuitBreaker:
    return CircuitBreaker(
        name="chsi",
        failure_threshold=3,
        reset_timeout=30.0,
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )


async def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        with pytest.raises(Boom):
            await breaker.call(fail)


async def test_breaker_starts_closed_and_passes_calls() -> None:
    breaker = make_breaker(FakeClock())
    assert breaker.state is CircuitState.CLOSED
    assert await breaker.call(ok) == "ok"
    assert breaker.seconds_until_trial() == 0.0


async def test_breaker_opens_after_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 2
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert breaker.state is CircuitState.OPEN
    clock.advance(10)
    with pytest.raises(CircuitOpen) as caught:
        await breaker.call(ok)
    assert caught.value.retry_after == pytest.approx(20.0)
    assert caught.value.name == "chsi"


async def test_success_resets_the_failure_count() -> None:
    breaker = make_breaker(FakeClock())
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    await breaker.call(ok)
    assert breaker.consecutive_failures == 0
    for _ in range(2):
        with pytest.raises(Boom):
            await breaker.call(fail)
    assert breaker.state is CircuitState.CLOSED


async def test_open_circuit_does_not_call_the_function() -> None:
    breaker = make_breaker(FakeClock())
    await trip(breaker)
    called: list[int] = []

    async def spy() -> str:
        called.append(1)
        return "ok"

    with pytest.raises(CircuitOpen):
        await breaker.call(spy)
    assert called == []


async def test_half_open_after_cool_down_and_trial_success_closes() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    await trip(breaker)
    clock.advance(29.9)
    assert breaker.state is CircuitState.OPEN
    clock.advance(0.1)
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0


async def test_trial_failure_reopens_for_a_full_cool_down() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    await trip(breaker)
    clock.advance(30)
    with pytest.raises(Boom):
        await breaker.call(fail)
    assert breaker.state is CircuitState.OPEN
    assert breaker.seconds_until_trial() == pytest.approx(30.0)
    clock.advance(30)
    assert breaker.state is CircuitState.HALF_OPEN


async def test_only_one_trial_call_in_half_open() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    await trip(breaker)
    clock.advance(30)
    gate = asyncio.Event()
    trial_calls: list[int] = []

    async def slow() -> str:
        trial_calls.append(1)
        await gate.wait()
        return "ok"

    trial = asyncio.create_task(breaker.call(slow))
    await asyncio.sleep(0)
    assert trial_calls == [1]
    with pytest.raises(CircuitOpen) as caught:
        await breaker.call(slow)
    assert caught.value.retry_after == 0.0
    assert trial_calls == [1]
    gate.set()
    assert await trial == "ok"
    assert breaker.state is CircuitState.CLOSED
    results = await asyncio.gather(breaker.call(ok), breaker.call(ok))
    assert results == ["ok", "ok"]


async def test_cancelled_trial_frees_the_slot_without_a_verdict() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    await trip(breaker)
    clock.advance(30)

    async def hang() -> str:
        await asyncio.Event().wait()
        return "never"

    task = asyncio.create_task(breaker.call(hang))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is CircuitState.HALF_OPEN
    assert await breaker.call(ok) == "ok"
    assert breaker.state is CircuitState.CLOSED


async def test_non_failure_exceptions_count_as_success() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock, is_failure=lambda exc: not isinstance(exc, Fatal))

    async def answered_no() -> str:
        raise Fatal("404")

    for _ in range(5):
        with pytest.raises(Fatal):
            await breaker.call(answered_no)
    assert breaker.state is CircuitState.CLOSED
    await trip(breaker)
    clock.advance(30)
    with pytest.raises(Fatal):
        await breaker.call(answered_no)
    assert breaker.state is CircuitState.CLOSED


async def test_late_results_of_calls_admitted_before_opening_decide_nothing() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    gate = asyncio.Event()

    async def slow_ok() -> str:
        await gate.wait()
        return "ok"

    async def slow_fail() -> str:
        await gate.wait()
        raise Boom("late")

    late_ok = asyncio.create_task(breaker.call(slow_ok))
    late_fail = asyncio.create_task(breaker.call(slow_fail))
    await asyncio.sleep(0)
    await trip(breaker)
    gate.set()
    assert await late_ok == "ok"
    with pytest.raises(Boom):
        await late_fail
    assert breaker.state is CircuitState.OPEN
    assert breaker.seconds_until_trial() == pytest.approx(30.0)


async def test_retry_around_breaker_stops_when_circuit_opens() -> None:
    clock = FakeClock()
    breaker = make_breaker(clock)
    sleep = FakeSleep()
    calls: list[int] = []

    async def down() -> str:
        calls.append(1)
        raise Boom("down")

    with pytest.raises(CircuitOpen):
        await RetryPolicy(attempts=10, sleep=sleep).run(lambda: breaker.call(down))
    assert len(calls) == 3
    assert breaker.state is CircuitState.OPEN


def test_breaker_validates_parameters() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError, match="reset_timeout"):
        CircuitBreaker(reset_timeout=-1)


def test_circuit_open_never_reports_negative_wait() -> None:
    assert CircuitOpen("x", -3).retry_after == 0.0
