"""Token verification: every way a token can be bad, the JWKS cache, the FastAPI dependencies."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jwt.utils import base64url_encode

from servicekit import (
    AppError,
    CurrentCandidate,
    CurrentStaff,
    JwksClient,
    Principal,
    StaticKeys,
    TokenVerifier,
    create_app,
    require_roles,
)
from servicekit.signing import Ed25519KeyPair, issue_token, jwks

pytestmark = pytest.mark.unit

T = TypeVar("T")
ISSUER = "zikao-identity"
KEY = Ed25519KeyPair.generate("k1")
OTHER_KEY = Ed25519KeyPair.generate("k1")
VERIFIER = TokenVerifier(StaticKeys({"k1": KEY.public_key}), issuer=ISSUER, audience="zikao")


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (verification against StaticKeys) synchronously."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the coroutine suspended")


def candidate_token(**overrides: Any) -> str:
    options: dict[str, Any] = {
        "subject": "acc-1",
        "kind": "candidate",
        "roles": ["candidate"],
        "issuer": ISSUER,
        "ttl": timedelta(minutes=15),
    }
    options.update(overrides)
    keypair = options.pop("keypair", KEY)
    return issue_token(keypair, **options)


def staff_token(roles: list[str], cps: list[str] | None = None) -> str:
    return issue_token(
        KEY,
        subject="staff-1",
        kind="staff",
        roles=roles,
        issuer=ISSUER,
        ttl=timedelta(minutes=15),
        confirmation_points=cps or ["110101"],
    )


def base_claims() -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    return {
        "iss": ISSUER,
        "aud": "zikao",
        "sub": "acc-1",
        "typ": "candidate",
        "roles": ["candidate"],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "j1",
    }


def signed(claims: dict[str, Any], kid: str = "k1") -> str:
    return jwt.encode(claims, KEY.private_key, algorithm="EdDSA", headers={"kid": kid})


def hand_made(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """A token signed with HMAC-SHA256 by hand (PyJWT refuses to do the confusion attack)."""
    head = base64url_encode(json.dumps(header).encode()).decode()
    body = base64url_encode(json.dumps(claims).encode()).decode()
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{base64url_encode(mac).decode()}"


async def rejected(token: str, code: str = "auth.invalid_token") -> AppError:
    with pytest.raises(AppError) as caught:
        await VERIFIER.verify(token)
    assert caught.value.status == 401
    assert caught.value.code == code
    assert caught.value.headers["WWW-Authenticate"].startswith("Bearer")
    assert "请重新登录" in caught.value.message
    return caught.value


async def test_a_valid_candidate_token_gives_its_principal() -> None:
    principal = await VERIFIER.verify(candidate_token(token_id="jti-9"))
    assert principal.account_id == "acc-1"
    assert principal.kind == "candidate"
    assert principal.is_candidate
    assert principal.roles == frozenset({"candidate"})
    assert principal.confirmation_points == frozenset()
    assert principal.token_id == "jti-9"
    assert principal.expires_at > datetime.now(UTC)


async def test_a_valid_staff_token_gives_roles_and_confirmation_points() -> None:
    principal = await VERIFIER.verify(staff_token(["reviewer", "ops"], ["110101", "310104"]))
    assert principal.is_staff
    assert principal.roles == frozenset({"reviewer", "ops"})
    assert principal.may_act_for("310104")
    assert not principal.may_act_for("440305")
    with pytest.raises(ValueError, match="frozen"):
        principal.account_id = "other"  # type: ignore[misc]


async def test_alg_none_is_rejected() -> None:
    token = jwt.encode(base_claims(), None, algorithm="none", headers={"kid": "k1"})  # type: ignore[arg-type]
    await rejected(token)
    head = base64url_encode(b'{"alg":"none","kid":"k1","typ":"JWT"}').decode()
    body = base64url_encode(json.dumps(base_claims()).encode()).decode()
    await rejected(f"{head}.{body}.")
    await rejected(f"{head}.{body}.AAAA")


async def test_hs256_is_rejected_including_the_public_key_confusion_trick() -> None:
    raw = KEY.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = KEY.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_json = json.dumps(KEY.public_jwk()).encode()
    for secret in (raw, pem, jwk_json, b"secret"):
        await rejected(hand_made({"alg": "HS256", "kid": "k1"}, base_claims(), secret))


async def test_rs256_is_rejected() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    await rejected(jwt.encode(base_claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"}))


async def test_unknown_kid_and_missing_kid_are_rejected() -> None:
    await rejected(signed(base_claims(), kid="k2"))
    await rejected(jwt.encode(base_claims(), KEY.private_key, algorithm="EdDSA"))


async def test_a_token_signed_by_another_key_with_the_same_kid_is_rejected() -> None:
    await rejected(candidate_token(keypair=OTHER_KEY))


async def test_expired_tokens_say_so_but_leeway_is_honoured() -> None:
    past = datetime.now(UTC) - timedelta(hours=1)
    await rejected(candidate_token(now=past, ttl=timedelta(minutes=15)), "auth.token_expired")
    just_expired = datetime.now(UTC) - timedelta(minutes=15, seconds=10)
    assert (await VERIFIER.verify(candidate_token(now=just_expired))).account_id == "acc-1"


async def test_not_yet_valid_tokens_are_rejected() -> None:
    claims = base_claims()
    claims["nbf"] += 600
    await rejected(signed(claims))
    await rejected(candidate_token(now=datetime.now(UTC) + timedelta(minutes=10)))


async def test_wrong_issuer_or_audience_is_rejected() -> None:
    await rejected(candidate_token(issuer="someone-else"))
    await rejected(candidate_token(audience="other-system"))


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf", "iss", "aud", "sub", "jti", "typ", "roles"])
async def test_missing_required_claims_are_rejected(claim: str) -> None:
    claims = base_claims()
    del claims[claim]
    await rejected(signed(claims))


@pytest.mark.parametrize(
    "changes",
    [
        {"typ": "admin"},
        {"roles": ["admin"]},
        {"roles": []},
        {"roles": "candidate"},
        {"sub": ""},
        {"sub": 12345},
        {"roles": ["candidate", "ops"]},
        {"cps": ["110101"]},
        {"typ": "staff", "roles": ["candidate"]},
        {"typ": "staff", "roles": ["reviewer"], "cps": ["12345"]},
        {"typ": "staff", "roles": ["reviewer"], "cps": "110101"},
        {"exp": "tomorrow"},
        {"iat": "today"},
    ],
)
async def test_malformed_claims_are_rejected(changes: dict[str, Any]) -> None:
    claims = base_claims()
    claims.update(changes)
    await rejected(signed(claims))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "...",
        "eyJhbGciOiJFZERTQSJ9.e30.",
        "令牌.令牌.令牌",
        "YQ==.YQ==.YQ==",
    ],
)
async def test_malformed_tokens_are_rejected(token: str) -> None:
    await rejected(token)


async def test_a_header_that_is_not_a_json_object_is_rejected() -> None:
    valid = candidate_token()
    _, body, sig = valid.split(".")
    for header in (b"[1,2]", b"not json", b"\xff\xfe"):
        await rejected(f"{base64url_encode(header).decode()}.{body}.{sig}")


async def test_critical_header_extensions_are_rejected() -> None:
    token = jwt.encode(
        base_claims(), KEY.private_key, algorithm="EdDSA", headers={"kid": "k1", "crit": ["exp"]}
    )
    await rejected(token)


async def test_oversize_tokens_are_rejected_before_parsing() -> None:
    token = candidate_token(extra_claims={"pad": "x" * 5000})
    error = await rejected(token)
    assert error.detail_en == "token too large"


async def test_non_canonical_base64_is_rejected() -> None:
    token = candidate_token()
    head, body, sig = token.split(".")
    # The last character of an 86-character signature carries 4 unused bits; set one.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(sig[-1])
    tweaked = sig[:-1] + alphabet[last ^ 1]
    await rejected(f"{head}.{body}.{tweaked}")


TOKEN = candidate_token(ttl=timedelta(days=3650))
SEGMENT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ "


@st.composite
def mutations(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["replace", "insert", "delete", "truncate", "swap", "text"]))
    at = draw(st.integers(min_value=0, max_value=len(TOKEN) - 1))
    char = draw(st.sampled_from(SEGMENT_CHARS) | st.characters())
    if kind == "replace":
        return TOKEN[:at] + char + TOKEN[at + 1 :]
    if kind == "insert":
        return TOKEN[:at] + char + TOKEN[at:]
    if kind == "delete":
        return TOKEN[:at] + TOKEN[at + 1 :]
    if kind == "truncate":
        return TOKEN[:at]
    if kind == "swap":
        parts = TOKEN.split(".")
        order = draw(st.permutations(range(3)))
        return ".".join(parts[i] for i in order)
    return draw(st.text(max_size=300))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated=mutations())
def test_random_mutations_of_a_valid_token_never_verify(mutated: str) -> None:
    assume(mutated != TOKEN)
    # Only AppError may escape; anything else fails the test.
    with pytest.raises(AppError) as caught:
        run_now(VERIFIER.verify(mutated))
    assert caught.value.status == 401
    assert caught.value.code == "auth.invalid_token"


def test_the_unmutated_token_verifies() -> None:
    assert run_now(VERIFIER.verify(TOKEN)).account_id == "acc-1"


# --- JwksClient --------------------------------------------------------------------------------


class FakeIdentity:
    """Identity's JWKS endpoint, counting requests; it can rotate keys and go down."""

    def __init__(self, *pairs: Ed25519KeyPair) -> None:
        self.pairs = list(pairs)
        self.requests = 0
        self.down = False
        self.extra_keys: list[Any] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.down:
            return httpx.Response(503)
        document = jwks(*self.pairs)
        document["keys"] = self.extra_keys + document["keys"]
        return httpx.Response(200, json=document)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def identity() -> FakeIdentity:
    return FakeIdentity(KEY)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def jwks_client(identity: FakeIdentity, clock: Clock) -> AsyncIterator[JwksClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(identity.handler)) as http:
        yield JwksClient(
            "http://identity/.well-known/jwks.json",
            http=http,
            cache_seconds=300,
            min_refresh_interval=10,
            clock=clock,
        )


async def test_jwks_is_fetched_once_and_cached(
    jwks_client: JwksClient, identity: FakeIdentity
) -> None:
    for _ in range(20):
        assert await jwks_client.get("k1") is not None
    assert identity.requests == 1


async def test_concurrent_first_lookups_fetch_once(
    jwks_client: JwksClient, identity: FakeIdentity
) -> None:
    keys = await asyncio.gather(*(jwks_client.get("k1") for _ in range(30)))
    assert all(k is not None for k in keys)
    assert identity.requests == 1


async def test_a_flood_of_unknown_kids_is_rate_limited(
    jwks_client: JwksClient, identity: FakeIdentity, clock: Clock
) -> None:
    await jwks_client.get("k1")
    for i in range(200):
        assert await jwks_client.get(f"bogus-{i}") is None
    assert identity.requests == 1
    clock.now += 10
    for i in range(200):
        assert await jwks_client.get(f"bogus-again-{i}") is None
    assert identity.requests == 2
    assert await jwks_client.get("k1") is not None
    assert identity.requests == 2


async def test_a_rotated_key_is_picked_up_on_its_first_token(
    jwks_client: JwksClient, identity: FakeIdentity, clock: Clock
) -> None:
    await jwks_client.get("k1")
    new = Ed25519KeyPair.generate("k2")
    identity.pairs.append(new)
    clock.now += 11
    verifier = TokenVerifier(jwks_client, issuer=ISSUER)
    principal = await verifier.verify(candidate_token(keypair=new))
    assert principal.account_id == "acc-1"
    assert identity.requests == 2


async def test_the_cache_expires(
    jwks_client: JwksClient, identity: FakeIdentity, clock: Clock
) -> None:
    await jwks_client.get("k1")
    clock.now += 301
    await jwks_client.get("k1")
    assert identity.requests == 2


async def test_stale_keys_are_served_while_identity_is_down(
    jwks_client: JwksClient, identity: FakeIdentity, clock: Clock
) -> None:
    await jwks_client.get("k1")
    identity.down = True
    clock.now += 400
    assert await jwks_client.get("k1") is not None
    assert await jwks_client.get("k1") is not None
    assert identity.requests == 2


async def test_identity_down_from_the_start_is_503_not_401(
    jwks_client: JwksClient, identity: FakeIdentity
) -> None:
    identity.down = True
    with pytest.raises(AppError) as caught:
        await jwks_client.get("k1")
    assert caught.value.status == 503
    assert caught.value.code == "auth.unavailable"


async def test_keys_other_than_ed25519_signing_keys_are_skipped(
    jwks_client: JwksClient, identity: FakeIdentity
) -> None:
    identity.extra_keys = [
        {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
        {"kty": "OKP", "crv": "Ed448", "kid": "ed448", "x": "AAAA"},
        {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "x": KEY.public_jwk()["x"], "use": "enc"},
        {"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": "AAAA"},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        "not a key",
    ]
    for kid in ("rsa", "ed448", "enc", "short", "hmac"):
        assert await jwks_client.get(kid) is None
    assert await jwks_client.get("k1") is not None


async def test_jwks_client_creates_and_closes_its_own_http_client() -> None:
    client = JwksClient("http://identity.invalid/jwks")
    await client.aclose()


def test_key_pairs_survive_pem_round_trips() -> None:
    for password in (None, b"pass phrase"):
        pem = KEY.private_pem(password)
        loaded = Ed25519KeyPair.from_pem("k1", pem, password)
        assert loaded.public_jwk() == KEY.public_jwk()
    assert b"ENCRYPTED" in KEY.private_pem(b"pw")
    jwk = KEY.public_jwk()
    assert jwk["kty"] == "OKP"
    assert jwk["crv"] == "Ed25519"
    assert jwk["alg"] == "EdDSA"
    assert "d" not in jwk


# --- FastAPI dependencies ----------------------------------------------------------------------


def build_app() -> FastAPI:
    app = create_app("test", version="0", token_verifier=VERIFIER)

    @app.get("/me")
    async def me(candidate: CurrentCandidate) -> dict[str, str]:
        return {"account": candidate.account_id}

    @app.get("/queue")
    async def queue(staff: CurrentStaff) -> dict[str, list[str]]:
        return {"cps": sorted(staff.confirmation_points)}

    @app.get("/ops")
    async def ops(principal: Principal = Depends(require_roles("ops"))) -> dict[str, str]:  # noqa: B008
        return {"account": principal.account_id}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Basic dXNlcjpwdw=="}, bearer("")])
async def test_no_bearer_token_is_401_missing_token(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "auth.missing_token"
    assert response.json()["error"]["message"] == "请先登录"
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_an_invalid_token_is_401_in_the_shared_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers=bearer("not.a.token"))
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "auth.invalid_token"
    assert error["message"] == "登录已失效，请重新登录"
    assert error["request_id"]
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_candidates_and_staff_reach_only_their_own_routes(client: httpx.AsyncClient) -> None:
    candidate = bearer(candidate_token())
    reviewer = bearer(staff_token(["reviewer"], ["110101"]))
    assert (await client.get("/me", headers=candidate)).json() == {"account": "acc-1"}
    assert (await client.get("/queue", headers=reviewer)).json() == {"cps": ["110101"]}

    response = await client.get("/queue", headers=candidate)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "auth.forbidden"
    assert (await client.get("/me", headers=reviewer)).status_code == 403


async def test_require_roles_checks_any_of_the_roles(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ops", headers=bearer(staff_token(["reviewer"])))).status_code == 403
    response = await client.get("/ops", headers=bearer(staff_token(["reviewer", "ops"])))
    assert response.status_code == 200


async def test_openapi_documents_the_bearer_scheme(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
