"""Verification of identity's EdDSA tokens, and the FastAPI dependencies every service uses.

Each service puts its verifier on `app.state.token_verifier` in its bootstrap, e.g.
`app.state.token_verifier = TokenVerifier(JwksClient(url), issuer="zikao-identity")`.
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from jwt.utils import base64url_decode, base64url_encode
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from servicekit.errors import AppError

log = logging.getLogger("servicekit.auth")

Kind = Literal["candidate", "staff"]
Role = Literal["candidate", "reviewer", "senior_reviewer", "ops"]
STAFF_ROLES: frozenset[str] = frozenset({"reviewer", "senior_reviewer", "ops"})
ALGORITHMS = ["EdDSA"]
MAX_TOKEN_BYTES = 4096
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_BEARER = 'Bearer realm="zikao"'


class Principal(BaseModel):
    """Who is calling: the verified claims of an identity token."""

    model_config = ConfigDict(frozen=True)

    account_id: str
    kind: Kind
    roles: frozenset[Role]
    confirmation_points: frozenset[str] = frozenset()
    token_id: str
    expires_at: datetime

    @property
    def is_candidate(self) -> bool:
        """Whether this is a candidate (考生) token."""
        return self.kind == "candidate"

    @property
    def is_staff(self) -> bool:
        """Whether this is a staff (reviewer, senior reviewer, ops) token."""
        return self.kind == "staff"

    def has_any_role(self, *roles: str) -> bool:
        """Whether the principal holds at least one of `roles`."""
        return not self.roles.isdisjoint(roles)

    def may_act_for(self, confirmation_point: str) -> bool:
        """Whether a staff principal is bound to this confirmation point (免考确认点)."""
        return self.is_staff and confirmation_point in self.confirmation_points


class _Claims(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    sub: str = Field(min_length=1, max_length=128)
    typ: Kind
    roles: list[Role] = Field(min_length=1, max_length=8)
    cps: list[Annotated[str, Field(pattern=r"^\d{6}$")]] = Field(default=[], max_length=512)
    exp: int
    jti: str = Field(min_length=1, max_length=128)


def invalid_token(detail_en: str) -> AppError:
    """401 `auth.invalid_token`: the token cannot be trusted."""
    return AppError(
        "auth.invalid_token",
        "登录已失效，请重新登录",
        detail_en,
        status=401,
        headers={"WWW-Authenticate": f'{_BEARER}, error="invalid_token"'},
    )


class UnknownSigningKey(AppError):
    """401 `auth.invalid_token` for a token whose key id is not (yet) among identity's published
    keys. To an API caller it is an invalid token like any other; a web session holding the token
    (sealed, so it came from identity) tells from it that the keys are rotating or out of reach,
    which is no reason to end the session."""

    def __init__(self) -> None:
        bad = invalid_token("unknown kid")
        super().__init__(bad.code, bad.message, bad.detail_en, status=bad.status,
                         headers=bad.headers)  # fmt: skip


def token_expired() -> AppError:
    """401 `auth.token_expired`: the token was valid but has expired."""
    return AppError(
        "auth.token_expired",
        "登录已过期，请重新登录",
        "token expired",
        status=401,
        headers={"WWW-Authenticate": f'{_BEARER}, error="invalid_token"'},
    )


def missing_token() -> AppError:
    """401 `auth.missing_token`: no bearer token was sent."""
    return AppError(
        "auth.missing_token",
        "请先登录",
        "no bearer token",
        status=401,
        headers={"WWW-Authenticate": _BEARER},
    )


def forbidden(detail_en: str) -> AppError:
    """403 `auth.forbidden`: authenticated, but not allowed here."""
    return AppError("auth.forbidden", "无权执行此操作", detail_en, status=403)


def keys_unavailable() -> AppError:
    """503 `auth.unavailable`: the signing keys could never be fetched from identity."""
    return AppError(
        "auth.unavailable",
        "登录服务暂时不可用，请稍后重试",
        "JWKS unavailable",
        status=503,
        headers={"Retry-After": "5"},
    )


class KeySource(Protocol):
    """Where verifying keys come from, by key id."""

    async def get(self, kid: str) -> Ed25519PublicKey | None:
        """The public key for `kid`, or None when there is none."""
        ...


class StaticKeys:
    """A fixed set of verifying keys (identity itself, and tests)."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self._keys = dict(keys)

    async def get(self, kid: str) -> Ed25519PublicKey | None:
        """The key for `kid`, if known."""
        return self._keys.get(kid)


def parse_jwks(document: Any) -> dict[str, Ed25519PublicKey]:
    """The Ed25519 signing keys of a JWKS document; anything else in it is skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, Ed25519PublicKey] = {}
    for jwk in document["keys"]:
        if not isinstance(jwk, dict):
            continue
        kid, x = jwk.get("kid"), jwk.get("x")
        if (
            jwk.get("kty") != "OKP"
            or jwk.get("crv") != "Ed25519"
            or jwk.get("use", "sig") != "sig"
            or jwk.get("alg", "EdDSA") != "EdDSA"
            or not isinstance(kid, str)
            or not isinstance(x, str)
        ):
            continue
        try:
            keys[kid] = Ed25519PublicKey.from_public_bytes(base64url_decode(x))
        except (ValueError, binascii.Error):
            log.warning("skipping a malformed JWK", extra={"kid": kid[:64]})
    return keys


class JwksClient:
    """Identity's public keys from its JWKS: cached, refreshed on an unknown kid (rate-limited)."""

    def __init__(
        self,
        url: str,
        *,
        http: httpx.AsyncClient | None = None,
        cache_seconds: float = 300,
        min_refresh_interval: float = 10,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._url = url
        self._http = http
        self._owns_http = http is None
        self._cache_seconds = cache_seconds
        self._min_refresh_interval = min_refresh_interval
        self._timeout = timeout
        self._clock = clock
        self._keys: dict[str, Ed25519PublicKey] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        return (
            self._fetched_at is not None and self._clock() - self._fetched_at < self._cache_seconds
        )

    def _may_fetch(self) -> bool:
        return (
            self._attempted_at is None
            or self._clock() - self._attempted_at >= self._min_refresh_interval
        )

    async def get(self, kid: str) -> Ed25519PublicKey | None:
        """The key for `kid`, fetching the JWKS when the cache is stale or the kid is new."""
        key = self._keys.get(kid)
        if key is not None and self._fresh():
            return key
        async with self._lock:
            key = self._keys.get(kid)
            if key is not None and self._fresh():
                return key
            if self._may_fetch():
                await self._refresh()
            if self._fetched_at is None:
                raise keys_unavailable()
            return self._keys.get(kid)

    async def _refresh(self) -> None:
        self._attempted_at = self._clock()
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._timeout)
        try:
            response = await self._http.get(self._url, timeout=self._timeout)
            response.raise_for_status()
            keys = parse_jwks(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            # Keep serving the keys we have; identity may be briefly away.
            log.warning("JWKS refresh failed", extra={"url": self._url, "error": repr(exc)})
            return
        self._keys = keys
        self._fetched_at = self._clock()

    async def aclose(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None


def _canonical_segments(token: str) -> bool:
    """Three base64url segments in canonical form (no padding bits set, no stray characters)."""
    parts = token.split(".")
    if len(parts) != 3:
        return False
    for part in parts:
        if not _SEGMENT.fullmatch(part):
            return False
        try:
            if base64url_encode(base64url_decode(part)).decode("ascii") != part:
                return False
        except (ValueError, binascii.Error):
            return False
    return True


class TokenVerifier:
    """Verifies identity's tokens: EdDSA only, known kid, issuer, audience, time, claim shapes."""

    def __init__(
        self, keys: KeySource, *, issuer: str, audience: str = "zikao", leeway: int = 30
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token; AppError 401 for anything else."""
        if len(token) > MAX_TOKEN_BYTES:
            raise invalid_token("token too large")
        if not token.isascii() or not _canonical_segments(token):
            raise invalid_token("token malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise invalid_token("token header malformed") from exc
        if header.get("alg") not in ALGORITHMS:
            raise invalid_token(f"algorithm not allowed: {str(header.get('alg'))[:20]}")
        if "crit" in header:
            # No JWS extensions are understood here, so none may be declared critical.
            raise invalid_token("critical header extensions are not supported")
        kid = header.get("kid")
        if not isinstance(kid, str) or not 0 < len(kid) <= 128:
            raise invalid_token("token kid missing")
        key = await self._keys.get(kid)
        if key is None:
            raise UnknownSigningKey()
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=ALGORITHMS,
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise token_expired() from exc
        except jwt.PyJWTError as exc:
            raise invalid_token(f"token rejected: {type(exc).__name__}") from exc
        try:
            parsed = _Claims.model_validate(claims)
        except ValidationError as exc:
            raise invalid_token("token claims malformed") from exc
        roles = frozenset(parsed.roles)
        if parsed.typ == "candidate" and (roles != {"candidate"} or parsed.cps):
            raise invalid_token("candidate token with staff roles or confirmation points")
        if parsed.typ == "staff" and not roles <= STAFF_ROLES:
            raise invalid_token("staff token with candidate role")
        return Principal(
            account_id=parsed.sub,
            kind=parsed.typ,
            roles=roles,
            confirmation_points=frozenset(parsed.cps),
            token_id=parsed.jti,
            expires_at=datetime.fromtimestamp(parsed.exp, UTC),
        )


class VerifiesTokens(Protocol):
    """What the dependencies need on `app.state.token_verifier`."""

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token, or AppError 401."""
        ...


_bearer_scheme = HTTPBearer(auto_error=False, description="identity 签发的访问令牌")


async def bearer_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer_scheme)],
) -> Principal:
    """The verified principal of `Authorization: Bearer <token>` (401 when missing or invalid)."""
    if credentials is None or not credentials.credentials:
        raise missing_token()
    verifier: VerifiesTokens | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        raise RuntimeError("app.state.token_verifier is not set; wire it in the bootstrap")
    principal = await verifier.verify(credentials.credentials)
    request.state.principal = principal
    return principal


CurrentPrincipal = Annotated[Principal, Depends(bearer_principal)]


async def current_candidate(principal: CurrentPrincipal) -> Principal:
    """The calling candidate; 403 `auth.forbidden` for staff tokens."""
    if not principal.is_candidate:
        raise forbidden("candidate token required")
    return principal


async def current_staff(principal: CurrentPrincipal) -> Principal:
    """The calling staff member; 403 `auth.forbidden` for candidate tokens."""
    if not principal.is_staff:
        raise forbidden("staff token required")
    return principal


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency passing principals holding at least one of `roles` (else 403)."""
    if not roles:
        raise ValueError("require_roles needs at least one role")
    wanted: Iterable[str] = tuple(roles)

    async def dependency(principal: CurrentPrincipal) -> Principal:
        if not principal.has_any_role(*wanted):
            raise forbidden(f"one of roles {sorted(wanted)} required")
        return principal

    return dependency


CurrentCandidate = Annotated[Principal, Depends(current_candidate)]
CurrentStaff = Annotated[Principal, Depends(current_staff)]
