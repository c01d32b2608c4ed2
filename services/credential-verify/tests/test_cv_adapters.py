"""Provider adapters against httpx.MockTransport: protocol, errors, retries, breaker, QR."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import httpx
import pytest

from contracts.credential import CertificateExam
from credential_verify_service.adapters.chsi import (
    ChsiClient,
    ProviderConfig,
    compute_signature,
    parse_callback,
    sign_callback,
    verify_callback_signature,
)
from credential_verify_service.adapters.neea import NeeaClient
from credential_verify_service.adapters.qr import qr_png, qr_svg
from credential_verify_service.domain import errors
from credential_verify_service.domain.certificates import (
    CertificateCheckRequest,
    CertificateConfirmed,
    CertificateHolderMismatch,
    CertificateNotFound,
)
from servicekit.resilience import CircuitBreaker, CircuitState, RetryPolicy

pytestmark = pytest.mark.unit

BASE = "http://chsi.test"
SECRET = "chsi-sandbox-secret"
TICKET = "Abcdefghijklmnopqrstuvwxyz012_-9"
RECORD = {
    "record_id": "chsi-rec-0001",
    "name": "张三",
    "gender": "男",
    "id_number": "140105199001011234",
    "birth_date": "1990-01-01",
    "institution": "山西大学",
    "level": "本科",
    "major": "法学",
    "duration_years": 4,
    "category": "普通高等教育",
    "study_form": "普通全日制",
    "entry_date": "2008-09-01",
    "graduation_date": "2012-07-01",
    "conclusion": "毕业",
    "certificate_number": "101082012050001234",
    "transcript": [
        {
            "name": "民法学",
            "code": "00242",
            "credits": 4.0,
            "hours": 72,
            "score": "85",
            "assessment": "考试",
        }
    ],
}

Handler = Callable[[httpx.Request], httpx.Response]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def no_sleep(_: float) -> None:
    return None


class Recorder:
    """A MockTransport handler answering from a queue of responses (the last one repeats)."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def make(
    cls: type[ChsiClient] | type[NeeaClient],
    handler: Handler,
    clock: FakeClock | None = None,
    threshold: int = 5,
) -> ChsiClient | NeeaClient:
    config = ProviderConfig(base_url=BASE + "/", client_secret=SECRET, reset_timeout=30.0)
    return cls(
        config,
        client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        retry=RetryPolicy(attempts=3, sleep=no_sleep),
        breaker=CircuitBreaker(
            name=cls.name,
            failure_threshold=threshold,
            reset_timeout=30.0,
            clock=clock or FakeClock(),
            is_failure=lambda exc: not isinstance(exc, errors.CredentialError),
        ),
    )


def chsi(handler: Handler, clock: FakeClock | None = None, threshold: int = 5) -> ChsiClient:
    client = make(ChsiClient, handler, clock, threshold)
    assert isinstance(client, ChsiClient)
    return client


def neea(handler: Handler, clock: FakeClock | None = None, threshold: int = 5) -> NeeaClient:
    client = make(NeeaClient, handler, clock, threshold)
    assert isinstance(client, NeeaClient)
    return client


def lookup_ok() -> httpx.Response:
    return httpx.Response(
        200, json={"code": "A1B2C3D4E5F6G7H8", "valid_until": "2025-08-28", "record": RECORD}
    )


# --- CHSI: verification codes ----------------------------------------------------------------


async def test_lookup_happy_path_sends_the_protocol() -> None:
    recorder = Recorder(lookup_ok())
    result = await chsi(recorder).lookup_verification_code("a1b2-c3d4-e5f6-g7h8")
    assert result.valid_until == date(2025, 8, 28)
    assert result.record.name == "张三"
    assert result.record.transcript[0].assessment == "考试"
    assert result.record.entry_date == date(2008, 9, 1)
    (request,) = recorder.requests
    assert request.method == "POST"
    assert str(request.url) == BASE + "/api/v1/verification-codes/lookup"
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert json.loads(request.content) == {"code": "A1B2C3D4E5F6G7H8"}


async def test_malformed_code_is_never_sent() -> None:
    recorder = Recorder(lookup_ok())
    with pytest.raises(errors.VerificationCodeMalformed):
        await chsi(recorder).lookup_verification_code("ABC")
    assert recorder.requests == []


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, errors.VerificationCodeUnknown), (410, errors.VerificationCodeExpired)],
)
async def test_lookup_404_and_410(status: int, error: type[Exception]) -> None:
    recorder = Recorder(httpx.Response(status, json={"error": "x", "message": "y"}))
    client = chsi(recorder, threshold=1)
    with pytest.raises(error):
        await client.lookup_verification_code("123456789012")
    assert len(recorder.requests) == 1  # an answer, not retried
    assert client.breaker.state is CircuitState.CLOSED  # and not a failure


async def test_401_is_provider_unavailable_without_retry() -> None:
    recorder = Recorder(httpx.Response(401, json={"error": "unauthorized"}))
    with pytest.raises(errors.ChsiUnavailable) as caught:
        await chsi(recorder).lookup_verification_code("123456789012")
    assert "credentials" in caught.value.detail_en
    assert caught.value.status == 503
    assert len(recorder.requests) == 1


async def test_500_then_success_is_retried() -> None:
    recorder = Recorder(httpx.Response(500, text="oops"), lookup_ok())
    result = await chsi(recorder).lookup_verification_code("123456789012")
    assert result.code == "A1B2C3D4E5F6G7H8"
    assert len(recorder.requests) == 2


async def test_persistent_500_is_provider_unavailable() -> None:
    recorder = Recorder(httpx.Response(500, json={"error": "internal"}))
    with pytest.raises(errors.ChsiUnavailable) as caught:
        await chsi(recorder).lookup_verification_code("123456789012")
    assert caught.value.message == "学信网服务暂时不可用，请稍后再试"
    assert caught.value.retry_after is not None
    assert len(recorder.requests) == 3
    assert isinstance(caught.value.__cause__, Exception)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("slow"),
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow connect"),
        httpx.RemoteProtocolError("eof"),
    ],
)
async def test_transport_failures_are_provider_unavailable(failure: Exception) -> None:
    recorder = Recorder(failure)
    with pytest.raises(errors.ChsiUnavailable):
        await chsi(recorder).lookup_verification_code("123456789012")
    assert len(recorder.requests) == 3


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html><body>garbage</body></html>"),
        httpx.Response(200, json={"unexpected": True}),
        httpx.Response(200, json=[1, 2, 3]),
        httpx.Response(200, json={"code": "X", "valid_until": "soon", "record": RECORD}),
        httpx.Response(
            200,
            json={
                "code": "X",
                "valid_until": "2025-08-28",
                "record": {**RECORD, "level": "高中"},
            },
        ),
        httpx.Response(200, content=b"\xff\xfe"),
        httpx.Response(302, headers={"Location": "/login"}),
        httpx.Response(400, json={"error": "bad_request"}),
    ],
)
async def test_garbage_is_provider_unavailable(response: httpx.Response) -> None:
    with pytest.raises(errors.ChsiUnavailable):
        await chsi(Recorder(response)).lookup_verification_code("123456789012")


# --- CHSI: authorisations --------------------------------------------------------------------


def created() -> httpx.Response:
    return httpx.Response(
        201,
        json={
            "ticket": TICKET,
            "qr_content": f"{BASE}/app/approve/{TICKET}",
            "expires_at": "2025-03-01T10:15:00+08:00",
        },
    )


async def test_create_authorization_happy_path() -> None:
    recorder = Recorder(created())
    state = uuid4()
    result = await chsi(recorder).create_authorization(state, "https://us.test/callback")
    assert result.ticket == TICKET
    assert result.qr_content.endswith(TICKET)
    assert result.expires_at == datetime(2025, 3, 1, 2, 15, tzinfo=UTC)
    (request,) = recorder.requests
    assert str(request.url) == BASE + "/api/v1/authorizations"
    assert json.loads(request.content) == {
        "state": str(state),
        "callback_url": "https://us.test/callback",
    }


async def test_create_authorization_retries_connect_errors_only() -> None:
    recorder = Recorder(httpx.ConnectError("refused"), created())
    result = await chsi(recorder).create_authorization(uuid4(), "https://us.test/cb")
    assert result.ticket == TICKET
    assert len(recorder.requests) == 2

    for failure in (httpx.Response(500), httpx.ReadTimeout("slow")):
        recorder = Recorder(failure, created())
        with pytest.raises(errors.ChsiUnavailable):
            await chsi(recorder).create_authorization(uuid4(), "https://us.test/cb")
        assert len(recorder.requests) == 1


async def test_create_authorization_requires_an_aware_expiry() -> None:
    bad = httpx.Response(
        201, json={"ticket": TICKET, "qr_content": "x", "expires_at": "2025-03-01T10:15:00"}
    )
    with pytest.raises(errors.ChsiUnavailable):
        await chsi(Recorder(bad)).create_authorization(uuid4(), "https://us.test/cb")


async def test_get_authorization_approved_with_records() -> None:
    body = {
        "ticket": TICKET,
        "state": "s",
        "status": "approved",
        "expires_at": "2025-03-01T02:15:00Z",
        "decided_at": "2025-03-01T02:12:00Z",
        "records": [RECORD, {**RECORD, "record_id": "r2", "transcript": []}],
    }
    recorder = Recorder(httpx.Response(200, json=body))
    snap = await chsi(recorder).get_authorization(TICKET)
    assert snap.status == "approved"
    assert [r.record_id for r in snap.records] == ["chsi-rec-0001", "r2"]
    assert snap.decided_at == datetime(2025, 3, 1, 2, 12, tzinfo=UTC)
    assert recorder.requests[0].method == "GET"
    assert recorder.requests[0].url.path == f"/api/v1/authorizations/{TICKET}"


async def test_get_authorization_pending_and_unknown() -> None:
    body = {
        "ticket": TICKET,
        "state": "s",
        "status": "pending",
        "expires_at": "2025-03-01T02:15:00Z",
        "decided_at": None,
        "records": [],
    }
    snap = await chsi(Recorder(httpx.Response(200, json=body))).get_authorization(TICKET)
    assert (snap.status, snap.records, snap.decided_at) == ("pending", (), None)
    with pytest.raises(errors.AuthorizationNotFound):
        await chsi(Recorder(httpx.Response(404, json={"error": "not_found"}))).get_authorization(
            TICKET
        )
    with pytest.raises(errors.ChsiUnavailable):
        await chsi(Recorder(httpx.Response(200, json={**body, "status": "odd"}))).get_authorization(
            TICKET
        )


async def test_ticket_that_is_not_url_safe_is_not_sent() -> None:
    recorder = Recorder(httpx.Response(200))
    with pytest.raises(errors.AuthorizationNotFound):
        await chsi(recorder).get_authorization("../../admin")
    assert recorder.requests == []


# --- circuit breaker -------------------------------------------------------------------------


async def test_breaker_opens_then_recovers_through_half_open() -> None:
    clock = FakeClock()
    recorder = Recorder(httpx.Response(500))
    client = chsi(recorder, clock, threshold=3)
    with pytest.raises(errors.ChsiUnavailable):
        await client.lookup_verification_code("123456789012")  # 3 attempts = 3 failures
    assert client.breaker.state is CircuitState.OPEN
    assert len(recorder.requests) == 3

    clock.now = 10.0
    with pytest.raises(errors.ChsiUnavailable) as caught:
        await client.lookup_verification_code("123456789012")
    assert caught.value.retry_after == 20
    assert "circuit open" in caught.value.detail_en
    assert len(recorder.requests) == 3  # nothing sent while open

    clock.now = 30.0
    assert client.breaker.state is CircuitState.HALF_OPEN
    with pytest.raises(errors.ChsiUnavailable):
        await client.lookup_verification_code("123456789012")  # the trial fails: open again
    assert len(recorder.requests) == 4
    assert client.breaker.state is CircuitState.OPEN

    clock.now = 60.0
    recorder.answers = [lookup_ok()]
    result = await client.lookup_verification_code("123456789012")
    assert result.record.record_id == "chsi-rec-0001"
    assert client.breaker.state is CircuitState.CLOSED


async def test_default_breaker_ignores_domain_answers() -> None:
    config = ProviderConfig(base_url=BASE, client_secret=SECRET, failure_threshold=1)
    client = ChsiClient(
        config,
        client=httpx.AsyncClient(
            transport=httpx.MockTransport(Recorder(httpx.Response(404, json={"error": "x"})))
        ),
    )
    async with client:
        for _ in range(3):
            with pytest.raises(errors.VerificationCodeUnknown):
                await client.lookup_verification_code("123456789012")
        assert client.breaker.state is CircuitState.CLOSED


async def test_client_owns_its_http_client_when_none_is_given() -> None:
    client = ChsiClient(ProviderConfig(base_url=BASE, client_secret=SECRET))
    await client.aclose()


# --- NEEA ------------------------------------------------------------------------------------


def cet_request() -> CertificateCheckRequest:
    return CertificateCheckRequest.create(
        CertificateExam.CET4, "191234567890123", "张三", "14010519900101123x"
    )


async def test_neea_verified() -> None:
    answer = httpx.Response(
        200,
        json={
            "result": "verified",
            "certificate": {
                "exam": "CET",
                "certificate_number": "191234567890123",
                "name": "张三",
                "level": 4,
                "subject": None,
                "score": 480,
                "exam_session": "2019年12月",
                "issued_on": "2020-02-20",
            },
        },
    )
    recorder = Recorder(answer)
    outcome = await neea(recorder).query_certificate(cet_request())
    assert isinstance(outcome, CertificateConfirmed)
    assert (outcome.level, outcome.score, outcome.exam_session_iso) == (4, 480, "2019-12")
    assert outcome.issued_on == date(2020, 2, 20)
    (request,) = recorder.requests
    assert request.url.path == "/api/v1/certificates/query"
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert json.loads(request.content) == {
        "exam": "CET",
        "id_number": "14010519900101123X",
        "name": "张三",
        "certificate_number": "191234567890123",
    }


async def test_neea_mismatch_and_not_found() -> None:
    mismatch = httpx.Response(200, json={"result": "mismatch", "fields": ["name", "id_number"]})
    outcome = await neea(Recorder(mismatch)).query_certificate(cet_request())
    assert isinstance(outcome, CertificateHolderMismatch)
    assert outcome.fields == ("name", "id_number")
    outcome = await neea(
        Recorder(httpx.Response(200, json={"result": "not_found"}))
    ).query_certificate(cet_request())
    assert isinstance(outcome, CertificateNotFound)


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(200, json={"result": "maybe"}),
        httpx.Response(200, json={"result": "mismatch", "fields": []}),
        httpx.Response(200, json={"result": "mismatch", "fields": ["birthday"]}),
        httpx.Response(200, json={"result": "verified"}),
        httpx.Response(200, text="<html>garbage</html>"),
        httpx.Response(500),
        httpx.Response(401, json={"error": "unauthorized"}),
        httpx.Response(404, json={"error": "not_found"}),
        httpx.ReadTimeout("slow"),
    ],
)
async def test_neea_failures_are_neea_unavailable(answer: httpx.Response | Exception) -> None:
    with pytest.raises(errors.NeeaUnavailable) as caught:
        await neea(Recorder(answer)).query_certificate(cet_request())
    assert caught.value.status == 503
    assert caught.value.code == "credential.neea_unavailable"


async def test_neea_retries_a_500_then_succeeds() -> None:
    recorder = Recorder(httpx.Response(503), httpx.Response(200, json={"result": "not_found"}))
    assert isinstance(await neea(recorder).query_certificate(cet_request()), CertificateNotFound)
    assert len(recorder.requests) == 2


# --- callback signatures ---------------------------------------------------------------------

NOW = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
T = int(NOW.timestamp())
BODY = json.dumps(
    {"ticket": TICKET, "state": "s", "status": "approved", "decided_at": "2025-03-01T02:00:00Z"}
).encode()


def test_signature_round_trip() -> None:
    header = sign_callback(SECRET, BODY, T)
    assert verify_callback_signature(SECRET, header, BODY, NOW) == T
    assert verify_callback_signature(SECRET, header, BODY, NOW + timedelta(seconds=300)) == T
    assert verify_callback_signature(SECRET, header, BODY, NOW - timedelta(seconds=300)) == T
    upper = f"t={T}, v1={compute_signature(SECRET, T, BODY).upper()}"
    assert verify_callback_signature(SECRET, upper, BODY, NOW) == T


def test_signature_accepts_any_of_several_v1_and_ignores_other_schemes() -> None:
    header = f"t={T},v1={'0' * 64},v0=legacy,v1={compute_signature(SECRET, T, BODY)}"
    assert verify_callback_signature(SECRET, header, BODY, NOW) == T


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "garbage",
        f"t={T}",
        f"v1={'a' * 64}",
        f"t=abc,v1={'a' * 64}",
        f"t=-5,v1={'a' * 64}",
        f"t={T},v1=xyz",
        f"t={T},v1={'a' * 63}",
        f"t={T},t={T},v1={'a' * 64}",
        f"t=１２３,v1={'a' * 64}",
        f"t={'9' * 40},v1={'a' * 64}",
    ],
)
def test_malformed_signature_header(header: str | None) -> None:
    with pytest.raises(errors.CallbackSignatureMalformed) as caught:
        verify_callback_signature(SECRET, header, BODY, NOW)
    assert caught.value.status == 400


def test_wrong_signature() -> None:
    with pytest.raises(errors.CallbackSignatureInvalid):
        verify_callback_signature("other-secret", sign_callback(SECRET, BODY, T), BODY, NOW)
    with pytest.raises(errors.CallbackSignatureInvalid):
        verify_callback_signature(SECRET, sign_callback(SECRET, BODY, T), BODY + b" ", NOW)
    forged_time = f"t={T + 1},v1={compute_signature(SECRET, T, BODY)}"
    with pytest.raises(errors.CallbackSignatureInvalid):
        verify_callback_signature(SECRET, forged_time, BODY, NOW)


@pytest.mark.parametrize("skew", [301, -301, 86_400])
def test_stale_signature(skew: int) -> None:
    header = sign_callback(SECRET, BODY, T)
    with pytest.raises(errors.CallbackStale):
        verify_callback_signature(SECRET, header, BODY, NOW + timedelta(seconds=skew))
    assert (
        verify_callback_signature(
            SECRET, header, BODY, NOW + timedelta(seconds=skew), tolerance=abs(skew)
        )
        == T
    )


def test_parse_callback() -> None:
    callback = parse_callback(BODY)
    assert (callback.ticket, callback.status) == (TICKET, "approved")
    assert callback.decided_at == NOW
    with pytest.raises(errors.CallbackMalformed):
        parse_callback(b'{"ticket": "x", "status": "maybe"}')
    with pytest.raises(errors.CallbackMalformed):
        parse_callback(b"<html>")


# --- QR codes --------------------------------------------------------------------------------


def test_qr_png() -> None:
    png = qr_png(f"{BASE}/app/approve/{TICKET}")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert png[12:16] == b"IHDR"
    width = int.from_bytes(png[16:20], "big")
    height = int.from_bytes(png[20:24], "big")
    assert width == height
    assert width >= 21 * 8  # at least a version-1 symbol at scale 8
    assert png.endswith(b"IEND\xaeB`\x82")
    assert len(qr_png("x", scale=2)) < len(png)


def test_qr_svg() -> None:
    svg = qr_svg(f"{BASE}/app/approve/{TICKET}")
    assert svg.lstrip().startswith("<svg")
    assert 'xmlns="http://www.w3.org/2000/svg"' in svg
    assert "<path" in svg
    assert svg.rstrip().endswith("</svg>")


def test_qr_refuses_empty_content() -> None:
    with pytest.raises(ValueError, match="empty"):
        qr_png("")
    with pytest.raises(ValueError, match="empty"):
        qr_svg("")
