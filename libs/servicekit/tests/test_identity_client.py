"""IdentityClient (identity's login API as a web app calls it) and TokenKeeper (a session's
tokens turned into a verified principal, renewed with the refresh token when they run out)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from servicekit.auth import StaticKeys, TokenVerifier
from servicekit.identity_client import (
    ACCESS_KEY,
    REFRESH_KEY,
    UNAVAILABLE_MESSAGE,
    Captcha,
    IdentityClient,
    IdentityRefused,
    IdentityUnavailable,
    TokenKeeper,
    Tokens,
    seconds_left,
)
from servicekit.signing import IDENTITY_ISSUER, Ed25519KeyPair, issue_token
from servicekit.web import SessionCodec

pytestmark = pytest.mark.unit

PNG = "data:image/png;base64,iVBORw0KGgo="
KEYPAIR = Ed25519KeyPair.generate("identity-test")
STRANGER = Ed25519KeyPair.generate("identity-test")  # same kid, another key


def token_body(access: str = "a1", refresh: str = "r1") -> dict[str, Any]:
    return {
        "access_token": access,
        "refresh_token": refresh,
        "expires_in": 900,
        "refresh_expires_in": 604800,
        "token_type": "Bearer",
    }


class Identity:
    """A scripted identity: answers per path, and the requests it saw."""

    def __init__(self, answers: dict[str, Callable[[httpx.Request], httpx.Response]]) -> None:
        self.answers = answers
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answer = self.answers.get(request.url.path)
        if answer is None:
            return httpx.Response(404, json={"error": {"code": "x", "message": "无"}})
        return answer(request)

    def client(self) -> IdentityClient:
        return IdentityClient("http://identity/", transport=httpx.MockTransport(self))

    def body(self, index: int = -1) -> Any:
        return json.loads(self.seen[index].content)


def answer(status: int, body: Any = None, **headers: str) -> Callable[..., httpx.Response]:
    def respond(_: httpx.Request) -> httpx.Response:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return respond


def refused(status: int, code: str, message: str, **headers: str) -> Callable[..., httpx.Response]:
    return answer(status, {"error": {"code": code, "message": message}}, **headers)


# --- IdentityClient --------------------------------------------------------------------------


async def test_captcha_is_parsed() -> None:
    identity = Identity(
        {
            "/api/identity/captcha": answer(
                200, {"captcha_id": "c-1", "image": PNG, "expires_in": 120}
            )
        }
    )
    client = identity.client()
    assert await client.captcha() == Captcha("c-1", PNG, 120)
    assert identity.seen[0].method == "GET"
    assert identity.seen[0].headers["accept"] == "application/json"
    await client.aclose()


@pytest.mark.parametrize(
    "body",
    [
        {"captcha_id": "c-1", "image": "data:image/svg+xml;base64,PHN2Zz4=", "expires_in": 1},
        {"captcha_id": "c-1", "image": "javascript:alert(1)", "expires_in": 1},
        {"captcha_id": "c-1", "image": 5, "expires_in": 1},
        {"captcha_id": "c-1", "image": PNG},
        {"image": PNG, "expires_in": 1},
        {"captcha_id": "c-1", "image": PNG, "expires_in": "soon"},
        ["not", "an", "object"],
        b"<html>not json</html>",
    ],
)
async def test_an_unusable_captcha_answer_is_identity_unavailable(body: Any) -> None:
    client = Identity({"/api/identity/captcha": answer(200, body)}).client()
    with pytest.raises(IdentityUnavailable) as caught:
        await client.captcha()
    assert caught.value.status == 503
    assert caught.value.code == "web.identity_unavailable"
    assert caught.value.message == UNAVAILABLE_MESSAGE
    await client.aclose()


async def test_staff_login_posts_the_form_and_forwards_the_client_address() -> None:
    identity = Identity({"/api/identity/staff/login": answer(200, token_body())})
    client = identity.client()
    tokens = await client.staff_login("point.reviewer1", "pw", "c-1", "AB12", client_ip="10.0.0.7")
    assert tokens == Tokens("a1", "r1", 900, 604800)
    request = identity.seen[0]
    assert request.method == "POST" and request.url.path == "/api/identity/staff/login"
    assert identity.body() == {
        "username": "point.reviewer1",
        "password": "pw",
        "captcha_id": "c-1",
        "captcha_answer": "AB12",
    }
    assert request.headers["x-forwarded-for"] == "10.0.0.7"
    await client.staff_login("u", "p", "c", "a")
    assert "x-forwarded-for" not in identity.seen[1].headers
    await client.aclose()


async def test_candidate_login_uses_the_candidate_endpoint() -> None:
    identity = Identity({"/api/identity/login": answer(200, token_body("ca", "cr"))})
    client = identity.client()
    tokens = await client.candidate_login("140105199001011234", "pw", "c-1", "AB12")
    assert (tokens.access_token, tokens.refresh_token) == ("ca", "cr")
    assert identity.body()["identifier"] == "140105199001011234"
    await client.aclose()


@pytest.mark.parametrize(
    ("status", "code", "message", "retry"),
    [
        (401, "identity.login_failed", "账号或密码错误", None),
        (400, "identity.captcha_wrong", "验证码错误，请重新输入", None),
        (429, "identity.login_locked", "登录失败次数过多，请15分钟后再试", "900"),
        (429, "identity.login_locked", "登录失败次数过多", "soon"),
    ],
)
async def test_identitys_refusals_keep_their_code_and_message(
    status: int, code: str, message: str, retry: str | None
) -> None:
    headers = {"Retry-After": retry} if retry else {}
    client = Identity(
        {"/api/identity/staff/login": refused(status, code, message, **headers)}
    ).client()
    with pytest.raises(IdentityRefused) as caught:
        await client.staff_login("u", "p", "c", "a")
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        status,
        code,
        message,
    )
    assert caught.value.retry_after == (int(retry) if retry and retry.isdigit() else None)
    await client.aclose()


@pytest.mark.parametrize(
    "respond",
    [
        answer(500, {"error": {"code": "internal", "message": "系统繁忙"}}),
        answer(503, b"upstream down"),
        answer(401, b"<html>login</html>"),
        answer(400, {"detail": "no error envelope"}),
        answer(400, {"error": "just a string"}),
        answer(200, b"not json"),
        answer(200, {"access_token": "a"}),
        answer(200, {**token_body(), "expires_in": "soon"}),
    ],
)
async def test_nonsense_and_server_errors_are_identity_unavailable(respond: Any) -> None:
    client = Identity({"/api/identity/staff/login": respond}).client()
    with pytest.raises(IdentityUnavailable):
        await client.staff_login("u", "p", "c", "a")
    await client.aclose()


async def test_an_unreachable_identity_is_identity_unavailable() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    for failure in (boom, slow):
        client = IdentityClient("http://identity", transport=httpx.MockTransport(failure))
        with pytest.raises(IdentityUnavailable) as caught:
            await client.captcha()
        assert caught.value.headers == {"Retry-After": "10"}
        assert type(caught.value.__cause__).__name__ in ("ConnectError", "ReadTimeout")
        await client.aclose()


async def test_refresh_spends_the_refresh_token() -> None:
    identity = Identity({"/api/identity/token": answer(200, token_body("a2", "r2"))})
    client = identity.client()
    tokens = await client.refresh("r1")
    assert identity.body() == {"refresh_token": "r1"}
    assert (tokens.access_token, tokens.refresh_token) == ("a2", "r2")
    await client.aclose()


async def test_logout_tolerates_a_spent_token_but_not_identity_being_down() -> None:
    identity = Identity(
        {"/api/identity/logout": refused(401, "identity.refresh_invalid", "登录已失效")}
    )
    client = identity.client()
    assert await client.logout("r1") is None
    assert identity.body() == {"refresh_token": "r1"}
    await client.aclose()
    down = Identity({"/api/identity/logout": answer(502, b"bad gateway")}).client()
    with pytest.raises(IdentityUnavailable):
        await down.logout("r1")
    await down.aclose()


def test_tokens_go_into_a_session_keeping_its_csrf_secret() -> None:
    codec = SessionCodec(bytes(32), key_id="k1", purpose="zk_review")
    session = codec.new({"x": 1})
    held = Tokens("a1", "r1", 900, 1).into(session)
    assert held.data == {"x": 1, ACCESS_KEY: "a1", REFRESH_KEY: "r1"}
    assert held.csrf_secret == session.csrf_secret
    assert session.data == {"x": 1}  # the original is untouched
    assert codec.open(codec.seal(held)) is not None  # still fits in a cookie


# --- TokenKeeper -----------------------------------------------------------------------------

NOW = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def staff_token(
    *,
    issued: datetime = NOW,
    ttl: timedelta = timedelta(minutes=15),
    keypair: Ed25519KeyPair = KEYPAIR,
    roles: tuple[str, ...] = ("reviewer",),
) -> str:
    return issue_token(
        keypair,
        subject="0b6e2f4c-7d1a-4e3b-9c5d-2a8f6e1b3c4d",
        kind="staff",
        roles=roles,
        issuer=IDENTITY_ISSUER,
        ttl=ttl,
        confirmation_points=["140105"],
        now=issued,
    )


def verifier() -> TokenVerifier:
    return TokenVerifier(StaticKeys({KEYPAIR.kid: KEYPAIR.public_key}), issuer=IDENTITY_ISSUER)


def session_with(access: Any, refresh: Any) -> Any:
    codec = SessionCodec(bytes(32), key_id="k1", purpose="zk_review")
    data = {k: v for k, v in {ACCESS_KEY: access, REFRESH_KEY: refresh}.items() if v is not None}
    return codec.new(data)


def renewing(access: str, refresh: str = "r2") -> Identity:
    return Identity({"/api/identity/token": answer(200, token_body(access, refresh))})


async def test_a_fresh_token_is_used_without_calling_identity() -> None:
    identity = renewing("unused")
    access = staff_token(issued=datetime.now(UTC))
    keeper = TokenKeeper(verifier(), identity.client())
    signed = await keeper.signed_in(session_with(access, "r1"))
    assert signed is not None and not signed.renewed
    assert signed.access_token == access
    assert signed.principal.has_any_role("reviewer")
    assert signed.principal.confirmation_points == {"140105"}
    assert identity.seen == []


@pytest.mark.parametrize(
    ("clock_after_issue", "renews"),
    [
        (timedelta(minutes=14), False),  # 60 s left
        (timedelta(minutes=14, seconds=39), False),  # 21 s left
        (timedelta(minutes=14, seconds=41), True),  # 19 s left: renew before it runs out
        (timedelta(minutes=15, seconds=10), True),  # already past expiry
    ],
)
async def test_a_token_close_to_expiry_is_renewed(
    clock_after_issue: timedelta, renews: bool
) -> None:
    issued = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=14, seconds=30)
    old = staff_token(issued=issued)
    new = staff_token(issued=datetime.now(UTC))
    identity = renewing(new)
    moment = issued + clock_after_issue
    keeper = TokenKeeper(verifier(), identity.client(), clock=lambda: moment)
    session = session_with(old, "r1")
    signed = await keeper.signed_in(session)
    assert signed is not None
    assert signed.renewed is renews
    if renews:
        assert identity.body() == {"refresh_token": "r1"}
        assert signed.access_token == new
        assert signed.session.data == {ACCESS_KEY: new, REFRESH_KEY: "r2"}
        assert signed.session.csrf_secret == session.csrf_secret
    else:
        assert identity.seen == [] and signed.session is session


async def test_an_expired_token_is_renewed() -> None:
    old = staff_token(issued=datetime.now(UTC) - timedelta(hours=1))
    new = staff_token(issued=datetime.now(UTC))
    identity = renewing(new)
    signed = await TokenKeeper(verifier(), identity.client()).signed_in(session_with(old, "r1"))
    assert signed is not None and signed.renewed and signed.access_token == new
    assert len(identity.seen) == 1


async def test_a_refused_refresh_means_logging_in_again() -> None:
    old = staff_token(issued=datetime.now(UTC) - timedelta(hours=1))
    identity = Identity(
        {"/api/identity/token": refused(401, "identity.refresh_invalid", "登录已失效，请重新登录")}
    )
    assert (
        await TokenKeeper(verifier(), identity.client()).signed_in(session_with(old, "r1")) is None
    )
    assert len(identity.seen) == 1


async def test_identity_down_during_renewal_propagates() -> None:
    old = staff_token(issued=datetime.now(UTC) - timedelta(hours=1))
    identity = Identity({"/api/identity/token": answer(503, b"down")})
    keeper = TokenKeeper(verifier(), identity.client())
    with pytest.raises(IdentityUnavailable):
        await keeper.signed_in(session_with(old, "r1"))


async def test_a_forged_token_is_not_renewed() -> None:
    forged = staff_token(issued=datetime.now(UTC), keypair=STRANGER, roles=("senior_reviewer",))
    identity = renewing(staff_token(issued=datetime.now(UTC)))
    keeper = TokenKeeper(verifier(), identity.client())
    assert await keeper.signed_in(session_with(forged, "r1")) is None
    assert await keeper.signed_in(session_with("not.a.jwt", "r1")) is None
    assert identity.seen == []  # a bad access token is no reason to spend the refresh token


async def test_a_renewed_token_that_does_not_verify_is_refused() -> None:
    old = staff_token(issued=datetime.now(UTC) - timedelta(hours=1))
    bad = staff_token(issued=datetime.now(UTC), keypair=STRANGER)
    signed = await TokenKeeper(verifier(), renewing(bad).client()).signed_in(
        session_with(old, "r1")
    )
    assert signed is None


@pytest.mark.parametrize(
    ("access", "refresh"),
    [(None, None), ("a", None), (None, "r"), (5, "r"), ("a", ["r"])],
)
async def test_a_session_without_tokens_is_not_signed_in(access: Any, refresh: Any) -> None:
    identity = renewing("unused")
    keeper = TokenKeeper(verifier(), identity.client())
    assert await keeper.signed_in(session_with(access, refresh)) is None
    assert identity.seen == []


def test_seconds_left() -> None:
    principal = _principal(NOW + timedelta(seconds=90, milliseconds=700))
    assert seconds_left(principal, NOW) == 90
    assert seconds_left(principal, NOW + timedelta(minutes=5)) == 0


def _principal(expires_at: datetime) -> Any:
    from servicekit.auth import Principal

    return Principal(
        account_id="a", kind="staff", roles=frozenset({"reviewer"}), token_id="t",
        expires_at=expires_at,
    )  # fmt: skip


# --- one renewal per session at a time; only a refused refresh token ends a session --------


class SlowIdentity(Identity):
    """Identity taking a moment to renew: concurrent renewals overlap."""

    def __init__(self, new_access: str) -> None:
        super().__init__({"/api/identity/token": answer(200, token_body(new_access, "r2"))})

    def client(self) -> IdentityClient:
        async def handler(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.05)
            return self(request)

        return IdentityClient("http://identity/", transport=httpx.MockTransport(handler))


async def test_two_requests_of_one_session_renew_once() -> None:
    old = staff_token(issued=datetime.now(UTC) - timedelta(hours=1))
    new = staff_token(issued=datetime.now(UTC))
    identity = SlowIdentity(new)
    keeper = TokenKeeper(verifier(), identity.client())
    session = session_with(old, "r1")
    first, second = await asyncio.gather(keeper.signed_in(session), keeper.signed_in(session))
    assert first is not None and second is not None
    assert len(identity.seen) == 1, "the refresh token was spent twice"
    assert first.session.data == second.session.data == {ACCESS_KEY: new, REFRESH_KEY: "r2"}
    # A third request that read the old cookie a moment later gets the same successor too.
    third = await keeper.signed_in(session)
    assert third is not None and third.session.data == first.session.data
    assert len(identity.seen) == 1
    # Another session renews on its own.
    assert await keeper.signed_in(session_with(old, "r9")) is not None
    assert [json.loads(r.content)["refresh_token"] for r in identity.seen] == ["r1", "r9"]


async def test_a_renewal_is_remembered_only_briefly() -> None:
    old = staff_token(issued=datetime.now(UTC) - timedelta(hours=1))
    identity = renewing(staff_token(issued=datetime.now(UTC)))
    keeper = TokenKeeper(verifier(), identity.client(), recent=timedelta(0))
    session = session_with(old, "r1")
    assert await keeper.signed_in(session) is not None
    assert await keeper.signed_in(session) is not None
    assert len(identity.seen) == 2  # nothing remembered: identity's grace interval decides


async def test_a_request_that_gives_up_does_not_cancel_the_shared_renewal() -> None:
    old = staff_token(issued=datetime.now(UTC) - timedelta(hours=1))
    identity = SlowIdentity(staff_token(issued=datetime.now(UTC)))
    keeper = TokenKeeper(verifier(), identity.client())
    session = session_with(old, "r1")
    quitter = asyncio.ensure_future(keeper.signed_in(session))
    await asyncio.sleep(0.01)
    stayer = asyncio.ensure_future(keeper.signed_in(session))
    await asyncio.sleep(0.01)
    quitter.cancel()
    signed = await stayer
    assert signed is not None and signed.renewed and len(identity.seen) == 1


async def test_concurrent_renewals_share_identitys_failure_and_keep_the_session() -> None:
    old = staff_token(issued=datetime.now(UTC) - timedelta(hours=1))
    identity = Identity({"/api/identity/token": answer(503, b"down", **{"Retry-After": "5"})})
    keeper = TokenKeeper(verifier(), identity.client())
    session = session_with(old, "r1")
    results = await asyncio.gather(
        keeper.signed_in(session), keeper.signed_in(session), return_exceptions=True
    )
    assert all(isinstance(r, IdentityUnavailable) for r in results), results
    assert all(r.session is None and "请稍后重试" in r.message for r in results)  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "identity.too_many"), (403, "identity.forbidden"), (400, "request.malformed")],
)
async def test_a_refresh_refused_for_another_reason_than_the_token_keeps_the_session(
    status: int, code: str
) -> None:
    old = staff_token(issued=datetime.now(UTC) - timedelta(hours=1))
    identity = Identity({"/api/identity/token": refused(status, code, "请稍后")})
    with pytest.raises(IdentityUnavailable):
        await TokenKeeper(verifier(), identity.client()).signed_in(session_with(old, "r1"))


ROTATED = Ed25519KeyPair.generate("identity-next")  # a key identity rotated to


async def test_an_access_token_signed_with_a_key_not_yet_known_keeps_the_session() -> None:
    fresh = staff_token(issued=datetime.now(UTC), keypair=ROTATED)
    identity = renewing("unused")
    keeper = TokenKeeper(verifier(), identity.client())
    with pytest.raises(IdentityUnavailable) as caught:
        await keeper.signed_in(session_with(fresh, "r1"))
    assert caught.value.status == 503 and caught.value.session is None
    assert identity.seen == []  # nothing to renew: the token is fine, its key is on its way


async def test_an_expired_token_of_a_retired_key_is_renewed() -> None:
    old = staff_token(issued=datetime.now(UTC) - timedelta(hours=1), keypair=ROTATED)
    new = staff_token(issued=datetime.now(UTC))
    signed = await TokenKeeper(verifier(), renewing(new).client()).signed_in(
        session_with(old, "r1")
    )
    assert signed is not None and signed.renewed and signed.access_token == new


async def test_a_renewed_token_signed_with_an_unknown_key_keeps_the_renewed_session() -> None:
    old = staff_token(issued=datetime.now(UTC) - timedelta(hours=1))
    new = staff_token(issued=datetime.now(UTC), keypair=ROTATED)
    keeper = TokenKeeper(verifier(), renewing(new, "r2").client())
    with pytest.raises(IdentityUnavailable) as caught:
        await keeper.signed_in(session_with(old, "r1"))
    renewed = caught.value.session
    assert renewed is not None, "the spent refresh token's successor would be lost"
    assert renewed.data == {ACCESS_KEY: new, REFRESH_KEY: "r2"}


class Unreachable:
    """A key source whose JWKS could never be fetched (identity down since the start)."""

    async def get(self, kid: str) -> Any:
        from servicekit.auth import keys_unavailable

        raise keys_unavailable()


async def test_signing_keys_out_of_reach_keep_the_session() -> None:
    fresh = staff_token(issued=datetime.now(UTC))
    identity = renewing("unused")
    keeper = TokenKeeper(TokenVerifier(Unreachable(), issuer=IDENTITY_ISSUER), identity.client())
    with pytest.raises(IdentityUnavailable):
        await keeper.signed_in(session_with(fresh, "r1"))
    assert identity.seen == []
