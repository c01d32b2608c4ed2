"""Identity's login API seen from a server-rendered web app, and sessions that hold its tokens.

The reviewer UI and the candidate portal never let the browser hold a token: the server logs in
on the user's behalf (captcha, password), seals identity's access and refresh tokens into the
session cookie, and renews the access token with the refresh token when it runs out:

    identity = IdentityClient(settings.identity_url)
    keeper = TokenKeeper(verifier, identity)
    signed_in = await keeper.signed_in(session)   # None: log in again (refresh refused)
    signed_in.principal, signed_in.access_token, signed_in.session  # possibly renewed tokens

Identity's refusals keep their stable code and Chinese message (`IdentityRefused`); identity
being down or answering nonsense is `IdentityUnavailable` (503 `web.identity_unavailable`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from servicekit.auth import Principal, TokenVerifier
from servicekit.errors import AppError
from servicekit.peers import PeerClient, PeerFieldError, PeerRefused, PeerUnavailable
from servicekit.web import Session

ACCESS_KEY = "at"  # session data keys: short, the cookie has a size limit
REFRESH_KEY = "rt"
UNAVAILABLE_MESSAGE = "统一身份认证服务暂时不可用，请稍后再试"
RENEW_BEFORE = timedelta(seconds=20)  # renew a token this close to expiry, not after a failure


class IdentityUnavailable(PeerUnavailable):
    """Identity could not be reached or answered something unusable."""

    def __init__(self, detail_en: str) -> None:
        super().__init__("web.identity_unavailable", UNAVAILABLE_MESSAGE, detail_en, retry_after=10)


class IdentityRefused(PeerRefused):
    """Identity answered with a client error: wrong captcha, wrong password, locked, spent token."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: int | None,
        fields: Sequence[PeerFieldError] = (),
    ) -> None:
        super().__init__(status, code, message, retry_after, fields)


@dataclass(frozen=True, slots=True)
class Captcha:
    """A captcha to show: its id, a `data:image/png;base64,...` image, seconds it stays valid."""

    captcha_id: str
    image: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class Tokens:
    """What identity hands out at login and refresh."""

    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int

    def into(self, session: Session) -> Session:
        """`session` holding these tokens."""
        return session.with_data(**{ACCESS_KEY: self.access_token, REFRESH_KEY: self.refresh_token})


class IdentityClient(PeerClient):
    """The few identity endpoints a web app calls, with timeouts and clear failures."""

    peer = "identity"
    unavailable_message = UNAVAILABLE_MESSAGE

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, timeout=timeout, transport=transport, forward_request_id=False)

    def _unavailable(
        self, detail_en: str, *, retry_after: int | None = None, peer_code: str | None = None,
        message: str | None = None,
    ) -> PeerUnavailable:  # fmt: skip
        return IdentityUnavailable(detail_en)

    def _refused(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: int | None,
        fields: Sequence[PeerFieldError],
    ) -> Exception:
        return IdentityRefused(status, code, message, retry_after, fields)

    def _tokens(self, response: httpx.Response) -> Tokens:
        body = self._json(response)
        try:
            return Tokens(
                access_token=str(body["access_token"]),
                refresh_token=str(body["refresh_token"]),
                expires_in=int(body["expires_in"]),
                refresh_expires_in=int(body["refresh_expires_in"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise IdentityUnavailable("identity's token answer lacks fields") from exc

    async def captcha(self) -> Captcha:
        """获取验证码."""
        body = self._json(await self._call("GET", "/api/identity/captcha"))
        image = body.get("image")
        if not isinstance(image, str) or not image.startswith("data:image/png;base64,"):
            raise IdentityUnavailable("identity's captcha is not a PNG data URL")
        try:
            return Captcha(str(body["captcha_id"]), image, int(body["expires_in"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise IdentityUnavailable("identity's captcha answer lacks fields") from exc

    async def _login(self, path: str, body: dict[str, str], client_ip: str | None) -> Tokens:
        headers = {"X-Forwarded-For": client_ip} if client_ip else None
        return self._tokens(await self._call("POST", path, json=body, headers=headers))

    async def staff_login(
        self,
        username: str,
        password: str,
        captcha_id: str,
        captcha_answer: str,
        *,
        client_ip: str | None = None,
    ) -> Tokens:
        """工作人员登录; IdentityRefused with identity's code and message when refused."""
        body = {"username": username, "password": password,
                "captcha_id": captcha_id, "captcha_answer": captcha_answer}  # fmt: skip
        return await self._login("/api/identity/staff/login", body, client_ip)

    async def candidate_login(
        self,
        identifier: str,
        password: str,
        captcha_id: str,
        captcha_answer: str,
        *,
        client_ip: str | None = None,
    ) -> Tokens:
        """考生登录 (身份证号 or 准考证号)."""
        body = {"identifier": identifier, "password": password,
                "captcha_id": captcha_id, "captcha_answer": captcha_answer}  # fmt: skip
        return await self._login("/api/identity/login", body, client_ip)

    async def refresh(self, refresh_token: str) -> Tokens:
        """Spend the refresh token for a new pair (rotation)."""
        return self._tokens(
            await self._call("POST", "/api/identity/token", json={"refresh_token": refresh_token})
        )

    async def logout(self, refresh_token: str) -> None:
        """End the refresh family; a token already spent or unknown is fine (logged out)."""
        try:
            await self._call("POST", "/api/identity/logout", json={"refresh_token": refresh_token})
        except IdentityRefused:
            return


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A verified user of a web session: who, the token to call other services with, and the
    session to write back (renewed when the tokens were refreshed)."""

    principal: Principal
    access_token: str
    session: Session
    renewed: bool


class TokenKeeper:
    """Turns a session holding identity's tokens into a verified principal, refreshing as needed."""

    def __init__(
        self,
        verifier: TokenVerifier,
        identity: IdentityClient,
        *,
        clock: Any = None,
    ) -> None:
        self._verifier = verifier
        self._identity = identity
        self._clock = clock or (lambda: datetime.now(UTC))

    async def signed_in(self, session: Session) -> SignedIn | None:
        """The session's user, tokens renewed if the access token ran out or is about to;
        None when there are no tokens or identity refuses to renew them (log in again).
        IdentityUnavailable propagates: the user is not logged out because identity is down."""
        access = session.data.get(ACCESS_KEY)
        refresh = session.data.get(REFRESH_KEY)
        if not isinstance(access, str) or not isinstance(refresh, str):
            return None
        try:
            principal = await self._verifier.verify(access)
        except AppError as exc:
            if exc.code != "auth.token_expired":
                return None
        else:
            if principal.expires_at - self._clock() > RENEW_BEFORE:
                return SignedIn(principal, access, session, renewed=False)
        try:
            tokens = await self._identity.refresh(refresh)
        except IdentityRefused:
            return None
        try:
            principal = await self._verifier.verify(tokens.access_token)
        except AppError:
            return None
        return SignedIn(principal, tokens.access_token, tokens.into(session), renewed=True)


def seconds_left(principal: Principal, now: datetime | None = None) -> int:
    """Whole seconds until the principal's token expires (0 when it has)."""
    moment = now or datetime.now(UTC)
    return max(0, math.floor((principal.expires_at - moment).total_seconds()))
