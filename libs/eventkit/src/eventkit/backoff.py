"""Exponential backoff with jitter, and the one way a component rests after a transient failure.

Every loop that meets a transient failure (`eventkit.transient`) waits before it tries again: 0.1 s,
then twice as long each time up to a cap (5 s), each wait drawn between half and all of that
(jitter, so replicas that failed together do not retry together). The wait is a declared rest
(`eventkit.health.pause`): a long outage is not judged a stall, and `stop` ends it at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass

from eventkit.health import pause
from eventkit.transient import describe

log = logging.getLogger(__name__)


@dataclass
class Backoff:
    """The waits of one retry streak; `reset()` after a success."""

    initial: float = 0.1
    cap: float = 5.0
    attempts: int = 0

    def next_delay(self) -> float:
        """The next wait, in seconds: exponential, capped, jittered (half to all of it)."""
        ceiling = min(self.cap, self.initial * float(2 ** min(self.attempts, 30)))
        self.attempts += 1
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def reset(self) -> None:
        """A success: the next failure starts the streak over."""
        self.attempts = 0


async def rest_after(
    exc: BaseException,
    backoff: Backoff,
    stop: asyncio.Event,
    message: str,
    **extra: object,
) -> bool:
    """Log a transient failure (a warning with its cause), then wait the backoff's next delay.

    True when `stop` was set meanwhile (the caller gives up the retry and stops)."""
    delay = backoff.next_delay()
    log.warning(
        message,
        extra={
            **extra,
            "cause": describe(exc),
            "error": str(exc)[:300],
            "attempt": backoff.attempts,
            "retry_in_s": round(delay, 3),
        },
    )
    return await pause(stop, delay)
