"""Access and refresh tokens for logged-in accounts."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from identity_service.adapters.refresh_tokens import RefreshRefused, RefreshTokens
from identity_service.adapters.signing_keys import SigningKeys
from identity_service.domain.errors import DomainError
from identity_service.domain.staff import StaffPrincipal
from servicekit.signing import IDENTITY_ISSUER, issue_token

ISSUER = IDENTITY_ISSUER

# A staff account's current roles and confirmation points by id; None when missing or disabled.
StaffLookup = Callable[[str], Awaitable[StaffPrincipal | None]]


class RefreshInvalid(DomainError):
    """The refresh token is unknown, expired, revoked or was used before; log in again."""

    code = "identity.refresh_invalid"
    status = 401


@dataclass(frozen=True)
class TokenPair:
    """What a login or a refresh returns to the client."""

    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type, not a secret


class Tokens:
    """Signs short-lived access tokens and rotates refresh tokens."""

    def __init__(
        self,
        keys: SigningKeys,
        refresh: RefreshTokens,
        *,
        access_ttl: timedelta = timedelta(minutes=15),
        staff_lookup: StaffLookup | None = None,
    ) -> None:
        self._keys = keys
        self._refresh = refresh
        self._access_ttl = access_ttl
        self._staff_lookup = staff_lookup

    async def _access_for_candidate(self, candidate_id: str) -> str:
        return issue_token(
            await self._keys.current(),
            subject=candidate_id,
            kind="candidate",
            roles=["candidate"],
            issuer=ISSUER,
            ttl=self._access_ttl,
        )

    async def _access_for_staff(
        self, staff_id: str, roles: Iterable[str], confirmation_points: Iterable[str]
    ) -> str:
        return issue_token(
            await self._keys.current(),
            subject=staff_id,
            kind="staff",
            roles=roles,
            confirmation_points=confirmation_points,
            issuer=ISSUER,
            ttl=self._access_ttl,
        )

    async def for_candidate(self, candidate_id: str) -> TokenPair:
        """Tokens after a candidate's successful login (a new refresh family)."""
        refresh = await self._refresh.issue(candidate_id, "candidate")
        return TokenPair(
            await self._access_for_candidate(candidate_id),
            int(self._access_ttl.total_seconds()),
            refresh.token,
            refresh.expires_in,
        )

    async def for_staff(
        self,
        staff_id: str | uuid.UUID,
        roles: Iterable[str],
        confirmation_points: Iterable[str],
    ) -> TokenPair:
        """Tokens after a staff member's successful login (a new refresh family)."""
        subject = str(staff_id)
        refresh = await self._refresh.issue(subject, "staff")
        return TokenPair(
            await self._access_for_staff(subject, roles, confirmation_points),
            int(self._access_ttl.total_seconds()),
            refresh.token,
            refresh.expires_in,
        )

    async def rotate(self, refresh_token: str) -> TokenPair:
        """Spend a refresh token for a new pair; reuse of a spent one ends the whole family."""
        try:
            refresh = await self._refresh.rotate(refresh_token)
        except RefreshRefused as exc:
            raise RefreshInvalid(
                "登录已失效，请重新登录", f"refresh token {exc.problem.value}"
            ) from exc
        if refresh.account_kind == "staff":
            access = await self._access_for_current_staff(refresh.account_id, refresh.token)
        else:
            access = await self._access_for_candidate(refresh.account_id)
        return TokenPair(
            access,
            int(self._access_ttl.total_seconds()),
            refresh.token,
            refresh.expires_in,
        )

    async def _access_for_current_staff(self, staff_id: str, successor: str) -> str:
        """An access token with the account's roles and points as they are now (not at login).

        A missing or disabled account gets nothing, and its refresh family ends here.
        """
        current = None if self._staff_lookup is None else await self._staff_lookup(staff_id)
        if current is None:
            await self._refresh.revoke(successor)
            raise RefreshInvalid("登录已失效，请重新登录", "staff account missing or disabled")
        return await self._access_for_staff(
            current.staff_id, current.roles, current.confirmation_points
        )

    async def logout(self, refresh_token: str) -> None:
        """End the refresh family of this token (unknown tokens are ignored)."""
        await self._refresh.revoke(refresh_token)
