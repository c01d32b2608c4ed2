"""Resilience for calls to other systems: a retry policy and a circuit breaker.

Both are async, framework-free and deterministic under test: the retry policy takes its sleep
and its random source as parameters, the breaker takes its monotonic clock.

Typical composition (retry outside, breaker inside, so every attempt is seen by the breaker and
an open circuit stops the retries at once)::

    result = await retry.run(lambda: breaker.call(do_request))
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")

__all__ = ["CircuitBreaker", "CircuitOpen", "CircuitState", "RetryPolicy"]


async def _asyncio_sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


def _always(_: BaseException) -> bool:
    return True


class CircuitOpen(Exception):
    """The circuit is open (or its one trial call is in flight): the call was not attempted.

    `retry_after` is the number of seconds until the breaker lets a trial call through (0 when a
    trial is already in flight and its outcome decides).
    """

    def __init__(self, name: str, retry_after: float) -> None:
        super().__init__(f"circuit {name!r} is open; retry in {retry_after:.1f}s")
        self.name = name
        self.retry_after = max(0.0, retry_after)


@dataclass(frozen=True)
class RetryPolicy:
    """Retry an async call with exponential backoff and full jitter.

    `attempts` counts every try, the first included (1 = no retry). The delay before retry n
    (n = 1, 2, ...) is uniform in [0, min(max_delay, base_delay * multiplier ** (n - 1))]
    ("full jitter"). An exception is retried when it is an instance of `retry_on` and, if given,
    `retry_if(exc)` is true. `CircuitOpen` is never retried: the breaker already said no.
    """

    attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 2.0
    multiplier: float = 2.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    retry_if: Callable[[BaseException], bool] | None = None
    sleep: Callable[[float], Awaitable[None]] = field(default=_asyncio_sleep, compare=False)
    random: Callable[[], float] = field(default=_random.random, compare=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("delays must not be negative")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")

    def backoff_cap(self, retry_number: int) -> float:
        """The upper bound of the delay before retry `retry_number` (1-based)."""
        if retry_number < 1:
            raise ValueError("retry_number is 1-based")
        try:
            cap = self.base_delay * self.multiplier ** (retry_number - 1)
        except OverflowError:
            return self.max_delay
        return min(self.max_delay, cap)

    def delay(self, retry_number: int) -> float:
        """A full-jitter delay before retry `retry_number` (1-based)."""
        return self.random() * self.backoff_cap(retry_number)

    def is_retryable(
        self, exc: BaseException, retry_if: Callable[[BaseException], bool] | None = None
    ) -> bool:
        """Whether `exc` may be retried under this policy (or under the `retry_if` override)."""
        if isinstance(exc, CircuitOpen) or not isinstance(exc, self.retry_on):
            return False
        predicate = retry_if or self.retry_if or _always
        return predicate(exc)

    async def run(
        self,
        fn: Callable[[], Awaitable[T]],
        *,
        retry_if: Callable[[BaseException], bool] | None = None,
    ) -> T:
        """Call `fn` until it returns, an exception is not retryable, or attempts run out.

        `retry_if` overrides the policy's predicate for this call (e.g. a call that is safe to
        repeat only when the request never left). The last exception propagates unchanged.
        """
        retry_number = 0
        while True:
            try:
                return await fn()
            except Exception as exc:
                retry_number += 1
                if retry_number >= self.attempts or not self.is_retryable(exc, retry_if):
                    raise
            await self.sleep(self.delay(retry_number))


class CircuitState(StrEnum):
    """closed: calls pass; open: calls are refused; half_open: one trial call may pass."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """A consecutive-failure circuit breaker.

    closed → open after `failure_threshold` consecutive failures; open → half-open once
    `reset_timeout` seconds have passed; in half-open exactly one trial call is let through
    (concurrent callers get `CircuitOpen`); the trial's success closes the circuit, its failure
    opens it again for another `reset_timeout`.

    An exception counts as a failure when `is_failure(exc)` is true (default: every
    `Exception`); other exceptions mean the remote side answered and count as successes.
    Cancellation of a trial call frees the trial slot without deciding anything.
    """

    def __init__(
        self,
        *,
        name: str = "circuit",
        failure_threshold: int = 5,
        reset_timeout: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        is_failure: Callable[[BaseException], bool] = _always,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout < 0:
            raise ValueError("reset_timeout must not be negative")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_timeout = reset_timeout
        self._clock = clock
        self._is_failure = is_failure
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        """The current state (an open circuit whose cool-down passed reads as half-open)."""
        if (
            self._state is CircuitState.OPEN
            and self._clock() - self._opened_at >= self.reset_timeout
        ):
            self._state = CircuitState.HALF_OPEN
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def seconds_until_trial(self) -> float:
        """Seconds until a trial call is allowed (0 unless open)."""
        if self.state is not CircuitState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_timeout - self._clock())

    def before_call(self) -> bool:
        """Admit a call or raise `CircuitOpen`; returns True when the call is the trial."""
        state = self.state
        if state is CircuitState.CLOSED:
            return False
        if state is CircuitState.OPEN:
            raise CircuitOpen(self.name, self.seconds_until_trial())
        if self._trial_in_flight:
            raise CircuitOpen(self.name, 0.0)
        self._trial_in_flight = True
        return True

    def record_success(self, *, trial: bool = False) -> None:
        if trial:
            self._trial_in_flight = False
            self._close()
        elif self._state is CircuitState.CLOSED:
            self._failures = 0
        # a late success of a call admitted before the circuit opened decides nothing

    def record_failure(self, *, trial: bool = False) -> None:
        if trial:
            self._trial_in_flight = False
            self._open()
        elif self._state is CircuitState.CLOSED:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()

    def release_trial(self) -> None:
        """Free the trial slot without a verdict (the trial was cancelled)."""
        self._trial_in_flight = False

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run `fn` through the breaker."""
        trial = self.before_call()
        try:
            result = await fn()
        except Exception as exc:
            if self._is_failure(exc):
                self.record_failure(trial=trial)
            else:
                self.record_success(trial=trial)
            raise
        except BaseException:
            if trial:
                self.release_trial()
            raise
        self.record_success(trial=trial)
        return result

    def _open(self) -> None:
        self._state = CircuitState.OPEN
        self._opened_at = self._clock()
        self._failures = 0

    def _close(self) -> None:
        self._state = CircuitState.CLOSED
        self._failures = 0
