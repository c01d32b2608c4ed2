"""Login throttling policy: failures that lock an account or a client address, and for how long."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class ThrottleRule:
    """At most `max_failures` failed logins within `window`, else locked for `lockout`."""

    max_failures: int
    window: timedelta
    lockout: timedelta

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ValueError("max_failures must be at least 1")


@dataclass(frozen=True)
class ThrottlePolicy:
    """Separate rules per account (the identifier typed in) and per client address."""

    account: ThrottleRule = ThrottleRule(5, timedelta(minutes=15), timedelta(minutes=15))
    client: ThrottleRule = ThrottleRule(30, timedelta(minutes=15), timedelta(minutes=15))


# Registration: refusals that depend on the roster (no such entry, already registered) per roster
# entry (the ticket number typed) and per client address, so nobody can walk the roster.
REGISTRATION_POLICY = ThrottlePolicy(
    account=ThrottleRule(10, timedelta(minutes=15), timedelta(minutes=30)),
    client=ThrottleRule(20, timedelta(minutes=15), timedelta(minutes=30)),
)


def minutes_left(seconds: float) -> int:
    """Whole minutes to tell the user, never zero while a lock lasts."""
    return max(1, -(-int(seconds) // 60))
