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

Only identity refusing the refresh token (expired, revoked, reused: 401) ends a session. Identity
down or busy, its keys unreachable or a key id not yet known while keys rotate is a "try again
later" that keeps the session. A session's renewals take turns in the process (single flight):
two requests of one session (two tabs) arriving in the renew window spend the refresh token once
and both get its successor, also when the second comes a moment after the first renewal (the
successor is remembered for `RECENT_RENEWALS`); identity's grace interval covers two processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt

from servicekit.auth import Principal, TokenVerifier, UnknownSigningKey
from servicekit.errors import AppError
from servicekit.peers import PeerClient, PeerFieldError, PeerRefused, PeerUnavailable
from servicekit.web import Session

log = logging.getLogger("servicekit.identity_client")

ACCESS_KEY = "at"  # session data keys: short, the cookie has a size limit
REFRESH_KEY = "rt"
UNAVAILABLE_MESSAGE = "统一身份认证服务暂时不可用，请稍后再试"
# A signed-in user's request that cannot be served now: they stay signed in.
STILL_SIGNED_IN_MESSAGE = "统一身份认证服务暂时不可用，您仍处于登录状态，请稍后重试"
RENEW_BEFORE = timedelta(seconds=20)  # renew a token this close to expiry, not after a failure
# How long a renewal's answer serves other requests presenting the same (now spent) refresh
# token: the other tab's request that read the cookie before the renewed one arrived. Shorter
# than identity's grace interval (30 s), which covers the same between processes.
RECENT_RENEWALS = timedelta(seconds=20)
MAX_RECENT_RENEWALS = 10_000


def forwarded_for(client_ip: str | None) -> dict[str, str] | None:
    """The header telling identity whose request a UI's call is on (the person's address, as
    the UI's server resolved it: uvicorn's proxy headers from the ingress). Identity believes it
    only from its trusted proxies (IDENTITY_TRUSTED_PROXIES) and throttles per that address."""
    return {"X-Forwarded-For": client_ip} if client_ip else None


class IdentityUnavailable(PeerUnavailable):
    """Identity could not be reached or answered something unusable.

    `session`, when set, is the signed-in session with tokens identity just renewed but that
    could not be verified yet (its key unknown): the answer must write it, or the next request
    would present the spent refresh token again."""

    def __init__(
        self, detail_en: str, *, message: str = UNAVAILABLE_MESSAGE, session: Session | None = None
    ) -> None:
        super().__init__("web.identity_unavailable", message, detail_en, retry_after=10)
        self.session = session


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
        headers = forwarded_for(client_ip)
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


def _token_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenKeeper:
    """Turns a session holding identity's tokens into a verified principal, refreshing as needed."""

    def __init__(
        self,
        verifier: TokenVerifier,
        identity: IdentityClient,
        *,
        clock: Any = None,
        recent: timedelta = RECENT_RENEWALS,
    ) -> None:
        self._verifier = verifier
        self._identity = identity
        self._clock = clock or (lambda: datetime.now(UTC))
        # Renewals in flight, and recent ones' answers (monotonic time, tokens), by a hash of
        # the refresh token they spent (one per session); oldest first.
        self._renewing: dict[str, asyncio.Future[Tokens]] = {}
        self._recent: OrderedDict[str, tuple[float, Tokens]] = OrderedDict()
        self._recent_seconds = recent.total_seconds()

    async def signed_in(self, session: Session) -> SignedIn | None:
        """The session's user, tokens renewed if the access token ran out or is about to;
        None when there are no tokens, the access token is not identity's, or identity refuses
        the refresh token (expired, revoked, reused): log in again.

        IdentityUnavailable (the user stays signed in; "try again later") when identity is down
        or busy, or its signing keys cannot be had (unreachable, or a key id not known yet while
        keys rotate)."""
        access = session.data.get(ACCESS_KEY)
        refresh = session.data.get(REFRESH_KEY)
        if not isinstance(access, str) or not isinstance(refresh, str):
            return None
        try:
            principal = await self._verifier.verify(access)
        except UnknownSigningKey as exc:
            if not _expired_unverified(access, self._clock()):
                raise IdentityUnavailable(
                    "the access token's signing key is unknown", message=STILL_SIGNED_IN_MESSAGE
                ) from exc
            # Ran out anyway (its key may be long retired): renew it like any expired token.
        except AppError as exc:
            if exc.status >= 500:
                raise IdentityUnavailable(
                    f"cannot verify tokens: {exc.code}", message=STILL_SIGNED_IN_MESSAGE
                ) from exc
            if exc.code != "auth.token_expired":
                return None  # not identity's token: no reason to spend the refresh token
        else:
            if principal.expires_at - self._clock() > RENEW_BEFORE:
                return SignedIn(principal, access, session, renewed=False)
        try:
            tokens = await self._renew(refresh)
        except IdentityRefused as exc:
            if exc.status == 401:
                return None  # the refresh token expired, was revoked or reused: the session ends
            raise IdentityUnavailable(
                f"identity refused a refresh with {exc.status} {exc.code}",
                message=STILL_SIGNED_IN_MESSAGE,
            ) from exc
        except IdentityUnavailable as exc:
            raise IdentityUnavailable(exc.detail_en, message=STILL_SIGNED_IN_MESSAGE) from exc
        renewed = tokens.into(session)
        try:
            principal = await self._verifier.verify(tokens.access_token)
        except AppError as exc:
            if isinstance(exc, UnknownSigningKey) or exc.status >= 500:
                raise IdentityUnavailable(
                    f"cannot verify the renewed token: {exc.code}",
                    message=STILL_SIGNED_IN_MESSAGE,
                    session=renewed,
                ) from exc
            log.warning("identity renewed a token that does not verify", extra={"code": exc.code})
            return None
        return SignedIn(principal, tokens.access_token, renewed, renewed=True)

    async def _renew(self, refresh_token: str) -> Tokens:
        """Spend the refresh token once however many requests of its session ask at the same
        time or a moment apart: the later ones wait for the first one's answer (or share its
        failure), or get it from the recent renewals."""
        key = _token_fingerprint(refresh_token)
        now = time.monotonic()
        while self._recent and (
            len(self._recent) > MAX_RECENT_RENEWALS
            or next(iter(self._recent.values()))[0] < now - self._recent_seconds
        ):
            self._recent.popitem(last=False)
        recent = self._recent.get(key)
        if recent is not None:
            return recent[1]
        flight = self._renewing.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._identity.refresh(refresh_token))
            self._renewing[key] = flight

            def landed(done: asyncio.Future[Tokens]) -> None:
                if self._renewing.get(key) is done:
                    del self._renewing[key]
                if done.cancelled():
                    return
                if done.exception() is None:  # retrieved: every waiter may have gone away
                    self._recent[key] = (time.monotonic(), done.result())
                    self._recent.move_to_end(key)

            flight.add_done_callback(landed)
        # A request that gives up (client gone) must not cancel the others' renewal.
        return await asyncio.shield(flight)


def _expired_unverified(token: str, now: datetime) -> bool:
    """Whether the (unverified) token says it has expired; only to decide whether to renew a
    token from the sealed session whose key is no longer published. True when unreadable."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
        return bool(datetime.fromtimestamp(int(claims["exp"]), UTC) <= now)
    except (jwt.PyJWTError, KeyError, TypeError, ValueError, OverflowError):
        return True


def seconds_left(principal: Principal, now: datetime | None = None) -> int:
    """Whole seconds until the principal's token expires (0 when it has)."""
    moment = now or datetime.now(UTC)
    return max(0, math.floor((principal.expires_at - moment).total_seconds()))
