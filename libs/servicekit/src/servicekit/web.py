"""Server-rendered web UIs: sealed session cookies, CSRF tokens, login redirects, security headers.

The candidate portal and the reviewer UI keep identity's tokens in an AES-256-GCM sealed,
HttpOnly, SameSite cookie. Nothing here is global middleware except `SecurityHeaders`:

    codec = SessionCodec(settings.session_key, key_id="k2", old_keys={"k1": old_key},
                         purpose="zk_review", max_age=8 * 3600, idle_timeout=30 * 60)
    sessions = WebSessions(codec, cookie_name="zk_review", secure=settings.production)
    sessions.install(app)  # renders the login redirects raised by `require_session`
    app.add_middleware(SecurityHeaders, img_sources=[settings.s3_public_endpoint])
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeGuard
from urllib.parse import urlencode, urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI, Request, Response
from fastapi.responses import RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from servicekit.errors import AppError

MAX_COOKIE_BYTES = 3800
KEY_BYTES = 32
NONCE_BYTES = 12
CLOCK_SKEW_SECONDS = 60
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
CSRF_MESSAGE = "页面已过期，请刷新后重试"
EXPIRED_MESSAGE = "登录已超时，请重新登录"
REQUIRED_MESSAGE = "请先登录"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
_B64URL = re.compile(r"[A-Za-z0-9_-]+")
_FLASH: dict[str, str] = {"expired": EXPIRED_MESSAGE, "required": REQUIRED_MESSAGE}
_MAX_NEXT = 2000


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Strict base64url: the alphabet only, and canonical (no stray bits in the last character)."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if _b64encode(raw) == text else None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Session:
    """One browser session: the app's data, its CSRF secret, issue and last-activity times."""

    data: dict[str, Any]
    csrf_secret: str
    issued_at: int
    last_active: int = field(default=0)

    def with_data(self, **changes: Any) -> Session:
        """A copy with `changes` merged into `data` (same session: CSRF secret and times kept)."""
        return replace(self, data={**self.data, **changes})

    def touched(self, now: float) -> Session:
        """A copy whose last activity is `now`."""
        return replace(self, last_active=int(now))


class SessionCodec:
    """Seals a session into a cookie value with AES-256-GCM, and opens it again.

    The value is `<key id>.<base64url(nonce || ciphertext)>`; the key id picks the key, so
    cookies sealed with `old_keys` still open after a rotation. The cookie's purpose (its name)
    is authenticated data, so a portal cookie never opens as a review cookie. `open` returns
    None for anything but a genuine, unexpired value and never raises.
    """

    def __init__(
        self,
        key: bytes,
        *,
        key_id: str,
        old_keys: Mapping[str, bytes] | None = None,
        purpose: str = "session",
        max_age: float = 12 * 3600,
        idle_timeout: float | None = None,
        max_bytes: int = MAX_COOKIE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        keys = {**(old_keys or {}), key_id: key}
        for kid, raw in keys.items():
            if not _KEY_ID.fullmatch(kid):
                raise ValueError(f"session key id must match {_KEY_ID.pattern}: {kid[:20]!r}")
            if len(raw) != KEY_BYTES:
                raise ValueError(f"session key {kid} must be {KEY_BYTES} bytes, got {len(raw)}")
        if max_age <= 0 or (idle_timeout is not None and idle_timeout <= 0):
            raise ValueError("max_age and idle_timeout must be positive")
        self._ciphers = {kid: AESGCM(raw) for kid, raw in keys.items()}
        self._key_id = key_id
        self._purpose = purpose
        self.max_age = max_age
        self.idle_timeout = idle_timeout
        self._max_bytes = max_bytes
        self._clock = clock

    def now(self) -> float:
        """The codec's clock (injectable for tests)."""
        return self._clock()

    def new(self, data: Mapping[str, Any] | None = None) -> Session:
        """A fresh session (fresh CSRF secret): create one at every login against fixation."""
        now = int(self._clock())
        return Session(dict(data or {}), _b64encode(secrets.token_bytes(32)), now, now)

    def _aad(self, kid: str) -> bytes:
        return f"servicekit.web/v1|{self._purpose}|{kid}".encode()

    def seal(self, session: Session) -> str:
        """The cookie value of `session`; ValueError if it is not JSON-able or too large."""
        payload = json.dumps(
            {
                "d": session.data,
                "c": session.csrf_secret,
                "i": session.issued_at,
                "a": session.last_active,
            },
            ensure_ascii=False,
            separators=(",", ":"),
            allow_nan=False,
        ).encode()
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[self._key_id].encrypt(nonce, payload, self._aad(self._key_id))
        value = f"{self._key_id}.{_b64encode(nonce + sealed)}"
        if len(value) > self._max_bytes:
            raise ValueError(f"session cookie would be {len(value)} bytes (> {self._max_bytes})")
        return value

    def open(self, value: str | None) -> Session | None:
        """The session sealed in `value` if it is genuine and within max age and idle timeout."""
        try:
            return self._open(value)
        except Exception:  # a cookie is attacker input: refuse it, never raise
            return None

    def _open(self, value: str | None) -> Session | None:
        if not value or len(value) > self._max_bytes or not value.isascii():
            return None
        kid, dot, blob = value.partition(".")
        cipher = self._ciphers.get(kid)
        raw = _b64decode(blob) if dot else None
        if cipher is None or raw is None or len(raw) < NONCE_BYTES + 16:
            return None
        try:
            payload = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad(kid))
        except InvalidTag:
            return None
        doc = json.loads(payload)
        if not isinstance(doc, dict):
            return None
        data, csrf, issued, active = doc.get("d"), doc.get("c"), doc.get("i"), doc.get("a")
        if not (isinstance(data, dict) and isinstance(csrf, str) and csrf):
            return None
        if not (_is_int(issued) and _is_int(active)):
            return None
        now = self._clock()
        if issued > now + CLOCK_SKEW_SECONDS or active > now + CLOCK_SKEW_SECONDS:
            return None
        if active < issued or now - issued > self.max_age:
            return None
        if self.idle_timeout is not None and now - active > self.idle_timeout:
            return None
        return Session(data, csrf, issued, active)


def safe_next(value: str | None, default: str = "/") -> str:
    """`value` if it is a same-site relative path (`/x?y`), else `default`.

    Refuses absolute URLs, scheme-relative `//host`, backslashes (browsers read `/\\host` as
    `//host`), control characters and overlong values.
    """
    if not value or len(value) > _MAX_NEXT or not value.startswith("/"):
        return default
    if value.startswith("//") or "\\" in value:
        return default
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def csrf_token(session: Session, purpose: str = "form") -> str:
    """The CSRF token of `session` for templates: HMAC-SHA256 of its secret and `purpose`."""
    digest = hmac.new(session.csrf_secret.encode(), purpose.encode(), hashlib.sha256).digest()
    return _b64encode(digest)


def csrf_failed(detail_en: str) -> AppError:
    """403 `request.csrf`: the form is stale or was not sent by this site."""
    return AppError("request.csrf", CSRF_MESSAGE, detail_en, status=403)


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if parts.scheme == "https" else 80
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != default_port else "")


async def verify_csrf(
    request: Request,
    session: Session,
    *,
    origins: Collection[str] | None = None,
    purpose: str = "form",
) -> None:
    """Check an unsafe request's CSRF token (header `X-CSRF-Token` or form field `csrf_token`)
    in constant time, and its `Origin`/`Referer` when present; AppError 403 `request.csrf`.

    `origins` are the app's own origins (`https://portal.example.cn`); by default the request's.
    Safe methods (GET, HEAD, OPTIONS, TRACE) pass unchecked.
    """
    if request.method.upper() in SAFE_METHODS:
        return
    allowed = {o for o in (_origin_of(x) for x in origins or ()) if o}
    if not allowed:
        own = _origin_of(str(request.base_url))
        allowed = {own} if own else set()
    origin = request.headers.get("origin")
    referer = request.headers.get("referer")
    if origin is not None:
        if _origin_of(origin) not in allowed:
            raise csrf_failed("Origin does not match the app")
    elif referer is not None and _origin_of(referer) not in allowed:
        raise csrf_failed("Referer does not match the app")
    sent: object = request.headers.get(CSRF_HEADER)
    if sent is None:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not sent:
        raise csrf_failed("CSRF token missing")
    if not sent.isascii():
        raise csrf_failed("CSRF token malformed")
    expected = csrf_token(session, purpose)
    if not hmac.compare_digest(sent.encode("ascii"), expected.encode("ascii")):
        raise csrf_failed("CSRF token does not match the session")


class LoginRequired(Exception):
    """Raised by `require_session`; `WebSessions.install` renders it as its 303 redirect."""

    def __init__(self, response: Response) -> None:
        super().__init__("login required")
        self.response = response


async def _login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return exc.response


class WebSessions:
    """Session cookies of one web app (`zk_portal`, `zk_review`): read, write, clear, require."""

    def __init__(
        self,
        codec: SessionCodec,
        *,
        cookie_name: str,
        login_url: str = "/login",
        secure: bool = True,
        same_site: Literal["lax", "strict"] = "lax",
        origins: Collection[str] | None = None,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", cookie_name):
            raise ValueError(f"bad cookie name: {cookie_name[:70]!r}")
        self.codec = codec
        self.cookie_name = cookie_name
        self.flash_cookie_name = f"{cookie_name}_flash"
        self.login_url = login_url
        self.secure = secure
        self.same_site = same_site
        self.origins = tuple(origins or ())

    def install(self, app: FastAPI) -> None:
        """Render `LoginRequired` (raised by `require_session`) as its redirect."""
        app.add_exception_handler(LoginRequired, _login_required)

    def new(self, data: Mapping[str, Any] | None = None) -> Session:
        """A fresh session for a login (new CSRF secret)."""
        return self.codec.new(data)

    def read(self, request: Request) -> Session | None:
        """The request's valid session, or None (absent, tampered, expired, idle too long)."""
        return self.codec.open(request.cookies.get(self.cookie_name))

    def _set(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite=self.same_site,
        )

    def write(self, response: Response, session: Session) -> Session:
        """Seal `session` into the cookie, activity time renewed; returns what was sealed."""
        touched = session.touched(self.codec.now())
        remaining = self.codec.max_age - (touched.last_active - touched.issued_at)
        self._set(response, self.cookie_name, self.codec.seal(touched), max(1, int(remaining)))
        return touched

    def clear(self, response: Response) -> None:
        """Remove the session cookie (logout)."""
        response.delete_cookie(
            self.cookie_name,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite=self.same_site,
        )

    def pop_flash(self, request: Request, response: Response) -> str | None:
        """The login page's flash message (once), e.g. "登录已超时，请重新登录"."""
        code = request.cookies.get(self.flash_cookie_name)
        if code is None:
            return None
        response.delete_cookie(
            self.flash_cookie_name,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite=self.same_site,
        )
        return _FLASH.get(code)

    def login_redirect(self, request: Request, *, expired: bool) -> Response:
        """303 to the login page with `next` (GET/HEAD only) and a flash message."""
        query: dict[str, str] = {}
        if request.method.upper() in ("GET", "HEAD"):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            nxt = safe_next(target, default="")
            if nxt:
                query["next"] = nxt
        url = self.login_url + (f"?{urlencode(query)}" if query else "")
        response = RedirectResponse(url, status_code=303)
        response.headers["Cache-Control"] = "no-store"
        if expired:
            self.clear(response)
        self._set(response, self.flash_cookie_name, "expired" if expired else "required", 120)
        return response

    async def verify_csrf(self, request: Request, session: Session, purpose: str = "form") -> None:
        """`verify_csrf` with this app's configured origins."""
        await verify_csrf(request, session, origins=self.origins or None, purpose=purpose)

    def require_session(
        self, *, csrf: bool = True
    ) -> Callable[[Request, Response], Awaitable[Session]]:
        """A dependency: the valid session, renewed; else a 303 to the login page.

        With `csrf` (the default) unsafe methods must also pass `verify_csrf`. The renewed cookie
        is set on FastAPI's dependency response; a route returning its own Response (a template)
        renews with `sessions.write(response, session)`. The session is on
        `request.state.web_session` too.
        """

        async def dependency(request: Request, response: Response) -> Session:
            session = self.read(request)
            if session is None:
                present = self.cookie_name in request.cookies
                raise LoginRequired(self.login_redirect(request, expired=present))
            if csrf:
                await self.verify_csrf(request, session)
            session = self.write(response, session)
            request.state.web_session = session
            return session

        return dependency


def _csp(img_sources: Sequence[str]) -> str:
    img = " ".join(["'self'", "data:", "blob:", *img_sources])
    return (
        f"default-src 'self'; img-src {img}; script-src 'self'; style-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )


_SOURCE = re.compile(r"[^\s;,'\"]+")
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"


class SecurityHeaders:
    """Pure-ASGI middleware: CSP (no inline scripts), nosniff, framing, referrer, no-store.

    By default the full set goes on `text/html` responses only (other responses get `nosniff`);
    `all_responses=True` puts it on every response. Headers the route set itself are kept.
    `img_sources` are extra image origins (the S3 public endpoint of signed photo URLs).
    """

    def __init__(
        self, app: ASGIApp, *, img_sources: Sequence[str] = (), all_responses: bool = False
    ) -> None:
        for source in img_sources:
            if not _SOURCE.fullmatch(source):
                raise ValueError(f"bad CSP source: {source[:80]!r}")
        self.app = app
        self._all = all_responses
        self._full: list[tuple[bytes, bytes]] = [
            (b"content-security-policy", _csp(img_sources).encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"same-origin"),
            (b"x-frame-options", b"DENY"),
            (b"permissions-policy", PERMISSIONS_POLICY.encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Add the headers to the response start message."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                html = content_type.lower().startswith(b"text/html")
                wanted = list(self._full) if html or self._all else self._full[1:2]
                if html:
                    wanted.append((b"cache-control", b"no-store"))
                headers += [(k, v) for k, v in wanted if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class EndedSessions:
    """Sessions ended by logout, so a copy of the cookie is refused afterwards.

    Session cookies are stateless: without this a cookie copied before logout would keep
    working until its tokens ran out. Each session is known by a hash of its CSRF secret (random
    per session, never stored in the clear); rows go once the session could not be valid anyway.
    One indexed lookup per request. The table lives in the app's own schema:

        ended = EndedSessions(pool, schema="review_web", max_age=codec.max_age)
        await ended.create(conn)          # at startup, idempotent
    """

    def __init__(self, pool: Any, *, schema: str, max_age: float) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
            raise ValueError(f"bad schema name: {schema[:70]!r}")
        self._pool = pool
        self._table = f"{schema}.ended_sessions"
        self._schema = schema
        self._max_age = max_age

    async def create(self, conn: Any) -> None:
        """The schema and table (idempotent). An API and its worker prepare the database at
        the same time; IF NOT EXISTS alone races on the catalog, so creation is serialised."""
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"servicekit.schema:{self._schema}",
            )
            await conn.execute(
                f"CREATE SCHEMA IF NOT EXISTS {self._schema};"
                f" CREATE TABLE IF NOT EXISTS {self._table} ("
                " session_hash bytea PRIMARY KEY, ends_at timestamptz NOT NULL)"
            )

    @staticmethod
    def _key(session: Session) -> bytes:
        return hashlib.sha256(b"servicekit.web/ended|" + session.csrf_secret.encode()).digest()

    async def end(self, session: Session) -> None:
        """Refuse this session from now on (logout); forget sessions that expired anyway."""
        until = session.issued_at + self._max_age + CLOCK_SKEW_SECONDS
        async with self._pool.acquire() as conn:
            await conn.execute(
                f"INSERT INTO {self._table} (session_hash, ends_at)"
                " VALUES ($1, to_timestamp($2)) ON CONFLICT DO NOTHING",
                self._key(session),
                float(until),
            )
            await conn.execute(f"DELETE FROM {self._table} WHERE ends_at < now()")

    async def ended(self, session: Session) -> bool:
        """Whether this session was ended by a logout."""
        async with self._pool.acquire() as conn:
            found = await conn.fetchval(
                f"SELECT true FROM {self._table} WHERE session_hash = $1", self._key(session)
            )
        return bool(found)
