"""Access and refresh tokens for logged-in accounts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from identity_service.adapters.refresh_tokens import RefreshRefused, RefreshTokens
from identity_service.adapters.signing_keys import SigningKeys
from identity_service.domain.errors import DomainError
from servicekit.signing import issue_token

ISSUER = "zikao-identity"


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
    ) -> None:
        self._keys = keys
        self._refresh = refresh
        self._access_ttl = access_ttl

    async def _access_for_candidate(self, candidate_id: str) -> str:
        return issue_token(
            await self._keys.current(),
            subject=candidate_id,
            kind="candidate",
            roles=["candidate"],
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

    async def rotate(self, refresh_token: str) -> TokenPair:
        """Spend a refresh token for a new pair; reuse of a spent one ends the whole family."""
        try:
            refresh = await self._refresh.rotate(refresh_token)
        except RefreshRefused as exc:
            raise RefreshInvalid(
                "登录已失效，请重新登录", f"refresh token {exc.problem.value}"
            ) from exc
        if refresh.account_kind != "candidate":
            raise RefreshInvalid("登录已失效，请重新登录", "staff refresh is not offered yet")
        return TokenPair(
            await self._access_for_candidate(refresh.account_id),
            int(self._access_ttl.total_seconds()),
            refresh.token,
            refresh.expires_in,
        )

    async def logout(self, refresh_token: str) -> None:
        """End the refresh family of this token (unknown tokens are ignored)."""
        await self._refresh.revoke(refresh_token)
