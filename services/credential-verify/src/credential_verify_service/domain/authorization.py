"""学信网二维码授权: the state of one QR authorisation as a small pure state machine.

requested ──approve──▶ approved
    │ ├──────deny────▶ denied
    │ └──expire(now ≥ expires_at)──▶ expired

Every transition takes `now` (the domain has no clock) and returns a `Transition`: the new
state and whether anything changed. A repeated decision equal to the recorded one (CHSI retries
callbacks) is "already recorded", not an error; a different decision is AlreadyDecided.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from credential_verify_service.domain.errors import (
    AuthorizationAlreadyDecided,
    AuthorizationExpired,
    AuthorizationNotFound,
)


class AuthorizationStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Transition:
    """The outcome of a command: the (possibly unchanged) authorisation and whether it moved."""

    authorization: QrAuthorization
    changed: bool

    @property
    def already_recorded(self) -> bool:
        return not self.changed


@dataclass(frozen=True)
class QrAuthorization:
    """One QR authorisation of one candidate, identified by CHSI's ticket."""

    authorization_id: UUID
    candidate_id: UUID
    ticket: str
    expires_at: datetime
    status: AuthorizationStatus = AuthorizationStatus.REQUESTED
    decided_at: datetime | None = None

    @classmethod
    def request(
        cls,
        *,
        authorization_id: UUID,
        candidate_id: UUID,
        ticket: str,
        expires_at: datetime,
        now: datetime,
    ) -> QrAuthorization:
        """A fresh authorisation; `expires_at` must lie after `now`."""
        if not ticket:
            raise ValueError("ticket must not be empty")
        if expires_at <= now:
            raise AuthorizationExpired(f"expires_at {expires_at} is not after now {now}")
        return cls(authorization_id, candidate_id, ticket, expires_at)

    @property
    def is_decided(self) -> bool:
        return self.status in (AuthorizationStatus.APPROVED, AuthorizationStatus.DENIED)

    def is_lapsed(self, now: datetime) -> bool:
        """Still undecided but past its expiry (or already marked expired)."""
        if self.status is AuthorizationStatus.EXPIRED:
            return True
        return self.status is AuthorizationStatus.REQUESTED and now >= self.expires_at

    def ensure_owned_by(self, candidate_id: UUID) -> None:
        """Raise AuthorizationNotFound for anyone else: never reveal that it exists."""
        if candidate_id != self.candidate_id:
            raise AuthorizationNotFound(
                f"authorisation {self.authorization_id} requested by another candidate"
            )

    def approve(
        self,
        now: datetime,
        *,
        ticket: str | None = None,
        candidate_id: UUID | None = None,
        decided_at: datetime | None = None,
    ) -> Transition:
        """Record the candidate's approval (同意授权)."""
        return self._decide(AuthorizationStatus.APPROVED, now, ticket, candidate_id, decided_at)

    def deny(
        self,
        now: datetime,
        *,
        ticket: str | None = None,
        candidate_id: UUID | None = None,
        decided_at: datetime | None = None,
    ) -> Transition:
        """Record the candidate's refusal (拒绝)."""
        return self._decide(AuthorizationStatus.DENIED, now, ticket, candidate_id, decided_at)

    def expire(self, now: datetime) -> Transition:
        """Mark a lapsed, undecided authorisation expired; otherwise change nothing."""
        if self.status is AuthorizationStatus.REQUESTED and now >= self.expires_at:
            return Transition(replace(self, status=AuthorizationStatus.EXPIRED), changed=True)
        return Transition(self, changed=False)

    def _decide(
        self,
        decision: AuthorizationStatus,
        now: datetime,
        ticket: str | None,
        candidate_id: UUID | None,
        decided_at: datetime | None,
    ) -> Transition:
        if ticket is not None and ticket != self.ticket:
            raise AuthorizationNotFound(f"ticket does not belong to {self.authorization_id}")
        if candidate_id is not None:
            self.ensure_owned_by(candidate_id)
        if self.status is decision:
            return Transition(self, changed=False)
        if self.is_decided:
            raise AuthorizationAlreadyDecided(
                f"authorisation {self.authorization_id} is {self.status}, not {decision}"
            )
        # CHSI's signed decision time counts when given: a callback retried after the expiry
        # still records a decision taken in time.
        moment = decided_at if decided_at is not None else now
        if self.status is AuthorizationStatus.EXPIRED or moment >= self.expires_at:
            raise AuthorizationExpired(
                f"authorisation {self.authorization_id} expired at {self.expires_at}"
            )
        return Transition(replace(self, status=decision, decided_at=moment), changed=True)
