"""The portal's clients of identity, credential-verify and media, against scripted answers."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from application_service.adapters.peers import (
    CredentialPeer,
    IdentityPeer,
    MediaCitations,
    MediaPeer,
    PeerFieldError,
    PeerRefused,
    PeerUnavailable,
)

pytestmark = pytest.mark.unit

TOKEN = "header.candidate-access-token.signature"
ID_NUMBER = "140105199003152018"
MOBILE = "13812345678"
CANDIDATE = uuid.UUID("00000000-0000-4000-8000-0000000000c1")
PHOTO = uuid.UUID("00000000-0000-4000-8000-0000000000f1")
AUTH = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
Respond = Callable[[httpx.Request], httpx.Response]


class Peer:
    """A scripted peer: answers per (method, path), and the requests it saw."""

    def __init__(self, answers: dict[tuple[str, str], Respond]) -> None:
        self.answers = answers
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        respond = self.answers.get((request.method, request.url.path))
        if respond is None:
            return httpx.Response(404, json={"error": {"code": "x.nowhere", "message": "无"}})
        return respond(request)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def body(self, index: int = -1) -> Any:
        return json.loads(self.seen[index].content)


def answer(status: int, body: Any = None, **headers: str) -> Respond:
    def respond(_: httpx.Request) -> httpx.Response:
        if body is None:
            return httpx.Response(status, headers=headers)
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return respond


def refused(status: int, code: str, message: str, **extra: Any) -> Respond:
    return answer(status, {"error": {"code": code, "message": message, "request_id": "r", **extra}})


def bearer_everywhere(peer: Peer) -> None:
    assert peer.seen
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in peer.seen)


# --- identity ---------------------------------------------------------------------------------

PROFILE = {
    "candidate_id": str(CANDIDATE),
    "name": "张建国",
    "gender": "male",
    "id_number_masked": "1401**********2018",
    "admission_ticket_number": "010118100001",
    "exam_district": "140100",
    "registration_district": "140105",
    "major_code": "580401",
    "passed_courses": ["00015", "03708"],
    "mobile_masked": "138****5678",
    "email": None,
    "ethnicity": None,
    "household_type": None,
    "education": None,
    "occupation": None,
    "political_status": None,
}


CAPTCHA = uuid.UUID("00000000-0000-4000-8000-00000000c0de")


def identity(answers: dict[tuple[str, str], Respond]) -> tuple[IdentityPeer, Peer]:
    peer = Peer(answers)
    return IdentityPeer("http://identity/", transport=peer.transport), peer


async def test_register_posts_the_form_and_returns_the_candidate_id() -> None:
    client, peer = identity(
        {("POST", "/api/identity/candidates"): answer(201, {"candidate_id": str(CANDIDATE)})}
    )
    got = await client.register(
        "010118100001", ID_NUMBER, "张建国", "Zikao#2026", MOBILE, sms_code="123456",
        captcha_id=str(CAPTCHA), captcha_answer="ACDE",
    )  # fmt: skip
    assert got == CANDIDATE
    assert peer.body() == {
        "ticket_number": "010118100001",
        "id_number": ID_NUMBER,
        "name": "张建国",
        "password": "Zikao#2026",
        "mobile": MOBILE,
        "sms_code": "123456",
        "captcha_id": str(CAPTCHA),
        "captcha_answer": "ACDE",
    }
    assert "authorization" not in peer.seen[0].headers
    await client.aclose()


@pytest.mark.parametrize(
    ("error", "fields"),
    [
        (
            {
                "code": "request.invalid",
                "message": "提交的信息有误，请检查后重试",
                "fields": [
                    {
                        "field": "name",
                        "code": "string_too_short",
                        "message": "长度不能少于 1 个字符",
                    }
                ],
            },
            [PeerFieldError("name", "string_too_short", "长度不能少于 1 个字符")],
        ),
        (
            {
                "code": "identity.mobile_invalid",
                "field": "mobile",
                "message": "请输入有效的手机号码",
            },
            [PeerFieldError("mobile", "identity.mobile_invalid", "请输入有效的手机号码")],
        ),
        (
            {
                "code": "identity.id_number_checksum",
                "field": "id_number",
                "message": "身份证号校验位不正确",
            },
            [PeerFieldError("id_number", "identity.id_number_checksum", "身份证号校验位不正确")],
        ),
        (
            {"code": "identity.password_weak", "field": "password", "message": "密码至少8位"},
            [PeerFieldError("password", "identity.password_weak", "密码至少8位")],
        ),
        (
            {
                "code": "identity.roster_mismatch",
                "message": "准考证号、身份证号或姓名与在籍考生信息不符",
            },
            [],
        ),
    ],
)
async def test_registration_refusals_keep_the_field_errors(  # identity names the field
    error: dict[str, Any], fields: list[PeerFieldError]
) -> None:
    client, _ = identity({("POST", "/api/identity/candidates"): answer(422, {"error": error})})
    with pytest.raises(PeerRefused) as caught:
        await client.register(
            "t", "i", "n", "p", "m", sms_code="123456", captcha_id="c", captcha_answer="a"
        )
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        422,
        error["code"],
        error["message"],
    )
    assert list(caught.value.fields) == fields
    await client.aclose()


async def test_profile_contact_change_and_entries() -> None:
    changed = {**PROFILE, "mobile_masked": "139****0000", "email": "a@example.cn"}
    entries = [
        {"key": "exemption", "title": "免考申请", "state": "open", "message": "开放中"},
        {"key": "transfer", "title": "转考申请", "state": "closed", "message": "未开放"},
    ]
    client, peer = identity(
        {
            ("GET", "/api/identity/me"): answer(200, PROFILE),
            ("PATCH", "/api/identity/me"): answer(200, changed),
            ("GET", "/api/identity/me/entries"): answer(200, entries),
        }
    )
    profile = await client.profile(TOKEN)
    assert (profile.candidate_id, profile.name, profile.gender) == (CANDIDATE, "张建国", "male")
    assert profile.passed_courses == ("00015", "03708")
    assert profile.id_number_masked == "1401**********2018"
    after = await client.change_contact(TOKEN, mobile="13900000000", email="a@example.cn")
    assert peer.body() == {"mobile": "13900000000", "email": "a@example.cn"}
    assert (after.mobile_masked, after.email) == ("139****0000", "a@example.cn")
    await client.change_contact(TOKEN, email="")
    assert peer.body() == {"email": ""}  # "" clears the e-mail
    listed = await client.entries(TOKEN)
    assert [(e.key, e.is_open) for e in listed] == [("exemption", True), ("transfer", False)]
    bearer_everywhere(peer)
    await client.aclose()


async def test_an_expired_token_is_a_refusal() -> None:
    client, _ = identity(
        {("GET", "/api/identity/me"): refused(401, "auth.token_expired", "登录已过期，请重新登录")}
    )
    with pytest.raises(PeerRefused) as caught:
        await client.profile(TOKEN)
    assert (caught.value.status, caught.value.code) == (401, "auth.token_expired")
    assert caught.value.fields == ()
    await client.aclose()


@pytest.mark.parametrize(
    "body",
    [
        {**PROFILE, "gender": "unknown"},
        {k: v for k, v in PROFILE.items() if k != "name"},
        ["not", "an", "object"],
        b"<html>",
    ],
)
async def test_an_unusable_profile_is_identity_unavailable(body: Any) -> None:
    client, _ = identity({("GET", "/api/identity/me"): answer(200, body)})
    with pytest.raises(PeerUnavailable) as caught:
        await client.profile(TOKEN)
    assert (caught.value.status, caught.value.code) == (503, "web.identity_unavailable")
    assert caught.value.message == "统一身份认证服务暂时不可用，请稍后再试"
    await client.aclose()


async def test_unusable_entries_and_registration_answers_are_unavailable() -> None:
    client, _ = identity(
        {
            ("GET", "/api/identity/me/entries"): answer(200, [{"key": "x"}]),
            ("POST", "/api/identity/candidates"): answer(201, {"candidate_id": "nope"}),
        }
    )
    with pytest.raises(PeerUnavailable):
        await client.entries(TOKEN)
    with pytest.raises(PeerUnavailable):
        await client.register(
            "t", "i", "n", "p", "m", sms_code="123456", captcha_id="c", captcha_answer="a"
        )
    await client.aclose()


# --- credential-verify ------------------------------------------------------------------------

AUTHORIZATION: dict[str, Any] = {
    "authorization_id": str(AUTH),
    "method": "qr_code",
    "status": "requested",
    "expires_at": "2026-11-28T10:05:00Z",
    "decided_at": None,
    "accepted_records": 0,
    "refused_records": 0,
    "refused_fields": [],
}
QR = {
    **AUTHORIZATION,
    "qr_png": "data:image/png;base64,iVBORw0KGgo=",
    "qr_svg": "<svg xmlns='http://www.w3.org/2000/svg'></svg>",
    "qr_content": "http://chsi.example/approve/abc",
}
DEGREE = {
    "degree_ref": str(uuid.uuid4()),
    "name": "张建国",
    "id_number_masked": "1401**********2018",
    "institution": "山西大学",
    "major_name": "法律事务",
    "level": "junior_college",
    "study_form": "full_time",
    "category": "regular",
    "entry_year": 2008,
    "graduation_year": 2011,
    "conclusion": "毕业",
    "certificate_number": "101081201105001234",
    "verified_at": "2026-11-28T10:01:00Z",
    "valid_until": "2027-05-28",
    "transcript": [{"code": "00242", "name": "民法学", "score": 82}],
}
CHECK = {
    "check_id": str(uuid.uuid4()),
    "exam": "cet4",
    "certificate_number": "121141400100123",
    "outcome": "verified",
    "reason_code": None,
    "details": {"score": 480, "level": 4},
    "checked_at": "2026-11-28T10:02:00Z",
}
CV = "/api/credentials"


def credential(answers: dict[tuple[str, str], Respond]) -> tuple[CredentialPeer, Peer]:
    peer = Peer(answers)
    return CredentialPeer("http://cv", transport=peer.transport), peer


async def test_qr_authorisation_status_and_degrees() -> None:
    approved = {**AUTHORIZATION, "status": "approved", "accepted_records": 1,
                "decided_at": "2026-11-28T10:01:00Z"}  # fmt: skip
    client, peer = credential(
        {
            ("POST", f"{CV}/degree-authorizations"): answer(201, QR),
            ("GET", f"{CV}/degree-authorizations/{AUTH}"): answer(200, approved),
            ("GET", f"{CV}/degrees"): answer(200, {"degrees": [DEGREE]}),
        }
    )
    qr = await client.start_qr(TOKEN)
    assert (qr.authorization_id, qr.pending, qr.qr_content) == (AUTH, True, QR["qr_content"])
    assert qr.qr_png.startswith("data:image/png;base64,") and qr.qr_svg.startswith("<svg")
    assert qr.seconds_left(datetime(2026, 11, 28, 10, 3, 30, tzinfo=UTC)) == 90
    assert qr.seconds_left(datetime(2026, 11, 28, 11, 0, tzinfo=UTC)) == 0
    state = await client.authorization(TOKEN, str(AUTH))
    assert (state.status, state.pending, state.accepted_records) == ("approved", False, 1)
    [degree] = await client.degrees(TOKEN)
    assert (degree.institution, degree.level, degree.graduation_year) == (
        "山西大学",
        "junior_college",
        2011,
    )
    assert degree.transcript == ({"code": "00242", "name": "民法学", "score": 82},)
    assert degree.valid_until is not None and degree.valid_until.isoformat() == "2027-05-28"
    bearer_everywhere(peer)
    await client.aclose()


async def test_a_qr_that_is_not_a_png_data_url_is_unavailable() -> None:
    bad = {**QR, "qr_png": "javascript:alert(1)"}
    client, _ = credential({("POST", f"{CV}/degree-authorizations"): answer(201, bad)})
    with pytest.raises(PeerUnavailable) as caught:
        await client.start_qr(TOKEN)
    assert caught.value.code == "web.credential_unavailable"
    await client.aclose()


async def test_a_verification_code_and_its_refusal() -> None:
    redeemed = {"authorization": {**AUTHORIZATION, "method": "verification_code",
                                  "status": "approved"}, "degrees": [DEGREE]}  # fmt: skip
    client, peer = credential({("POST", f"{CV}/verification-codes"): answer(201, redeemed)})
    got = await client.redeem_code(TOKEN, "a7k3-q9x2-m5t8-b4rz")
    assert peer.body() == {"code": "a7k3-q9x2-m5t8-b4rz"}
    assert got.authorization.method == "verification_code"
    assert [d.name for d in got.degrees] == ["张建国"]
    await client.aclose()
    client, _ = credential(
        {
            ("POST", f"{CV}/verification-codes"): refused(
                410, "credential.verification_code_expired", "验证码已过期"
            )
        }
    )
    with pytest.raises(PeerRefused) as caught:
        await client.redeem_code(TOKEN, "H2N6P4W8C1D5F7JQ")
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        410,
        "credential.verification_code_expired",
        "验证码已过期",
    )
    await client.aclose()


async def test_a_certificate_check_sends_the_id_number_and_never_logs_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    check_id = CHECK["check_id"]
    client, peer = credential(
        {
            ("POST", f"{CV}/certificate-checks"): answer(201, CHECK),
            ("GET", f"{CV}/certificate-checks/{check_id}"): answer(200, CHECK),
        }
    )
    with caplog.at_level(logging.DEBUG):
        check = await client.check_certificate(TOKEN, "cet4", "121141400100123", ID_NUMBER)
        again = await client.certificate_check(TOKEN, check_id)
    assert peer.body(0) == {
        "exam": "cet4",
        "certificate_number": "121141400100123",
        "id_number": ID_NUMBER,
    }
    assert ID_NUMBER not in str(peer.seen[0].url)
    assert (check.verified, check.details["score"]) == (True, 480)
    assert again == check
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert ID_NUMBER not in logged and TOKEN not in logged
    await client.aclose()


async def test_an_id_number_of_another_person_is_refused_and_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, _ = credential(
        {
            ("POST", f"{CV}/certificate-checks"): refused(
                422, "credential.id_number_mismatch", "身份证号与本人不符", field="id_number"
            )
        }
    )
    with caplog.at_level(logging.DEBUG), pytest.raises(PeerRefused) as caught:
        await client.check_certificate(TOKEN, "cet4", "121141400100123", ID_NUMBER)
    assert caught.value.fields == (
        PeerFieldError("id_number", "credential.id_number_mismatch", "身份证号与本人不符"),
    )
    assert ID_NUMBER not in str(caught.value)
    assert ID_NUMBER not in caplog.text
    await client.aclose()


async def test_chsi_down_is_unavailable_with_its_retry_after() -> None:
    client, _ = credential(
        {
            ("POST", f"{CV}/degree-authorizations"): answer(
                503,
                {
                    "error": {
                        "code": "credential.chsi_unavailable",
                        "message": "学信网暂时无法访问，请稍后再试",
                    }
                },
                **{"Retry-After": "30"},
            )
        }
    )
    with pytest.raises(PeerUnavailable) as caught:
        await client.start_qr(TOKEN)
    error = caught.value
    assert (error.peer_code, error.retry_after, error.headers) == (
        "credential.chsi_unavailable",
        30,
        {"Retry-After": "30"},
    )
    assert error.message == "学信网暂时无法访问，请稍后再试"
    await client.aclose()


# --- media ------------------------------------------------------------------------------------

PHOTO_BODY = {
    "photo_id": str(PHOTO),
    "owner_id": str(CANDIDATE),
    "format": "jpeg",
    "width": 1000,
    "height": 800,
    "size_bytes": 12345,
    "sha256": "ab" * 32,
    "uploaded_at": "2026-11-28T10:00:00Z",
    "pinned": False,
    "display_url": f"/api/media/photos/{PHOTO}/display",
    "thumbnail_url": f"/api/media/photos/{PHOTO}/thumbnail",
    "original_url": f"/api/media/photos/{PHOTO}/original",
}
LINKS = {
    "display": "http://s3.example/b/display?X-Amz-Signature=1",
    "thumbnail": "http://s3.example/b/thumb?X-Amz-Signature=2",
    "original": "http://s3.example/b/orig?X-Amz-Signature=3",
    "expires_at": "2026-11-28T10:15:00Z",
}
PHOTOS = "/api/media/photos"


def media(answers: dict[tuple[str, str], Respond]) -> tuple[MediaPeer, Peer]:
    peer = Peer(answers)
    return MediaPeer("http://media", transport=peer.transport, upload_timeout=42.0), peer


async def test_upload_sends_the_bytes_unchanged_as_the_file_part() -> None:
    data = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"
    client, peer = media({("POST", PHOTOS): answer(201, PHOTO_BODY)})
    photo = await client.upload(TOKEN, data, "证书.jpg", "image/jpeg")
    assert (photo.photo_id, photo.width, photo.height, photo.size_bytes) == (
        PHOTO,
        1000,
        800,
        12345,
    )
    request = peer.seen[0]
    assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert int(request.headers["content-length"]) == len(request.content)
    assert data in request.content  # byte for byte, not re-encoded
    assert b'name="file"' in request.content and b"Content-Type: image/jpeg" in request.content
    assert request.extensions["timeout"]["read"] == 42.0
    bearer_everywhere(peer)
    await client.aclose()


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (413, "media.too_large", "照片不能超过 3 MB"),
        (422, "media.resolution_too_low", "照片分辨率过低，请上传大于 800×600 的照片"),
        (415, "media.unsupported_type", "只能上传 JPG 或 PNG 格式的照片"),
        (409, "media.quota_exceeded", "照片数量已达上限"),
    ],
)
async def test_upload_refusals_pass_through(status: int, code: str, message: str) -> None:
    client, _ = media({("POST", PHOTOS): refused(status, code, message)})
    with pytest.raises(PeerRefused) as caught:
        await client.upload(TOKEN, b"x", "a.jpg", "image/jpeg")
    assert (caught.value.status, caught.value.code, caught.value.message) == (status, code, message)
    await client.aclose()


async def test_a_busy_media_is_unavailable_with_its_retry_after() -> None:
    client, _ = media(
        {
            ("POST", PHOTOS): answer(
                503,
                {"error": {"code": "media.busy", "message": "上传人数较多，请稍后再试"}},
                **{"Retry-After": "5"},
            )
        }
    )
    with pytest.raises(PeerUnavailable) as caught:
        await client.upload(TOKEN, b"x", "a.jpg", "image/jpeg")
    assert (caught.value.code, caught.value.peer_code) == ("web.media_unavailable", "media.busy")
    assert caught.value.headers == {"Retry-After": "5"}
    await client.aclose()


async def test_list_show_links_content_and_delete() -> None:
    client, peer = media(
        {
            ("GET", PHOTOS): answer(200, {"photos": [PHOTO_BODY]}),
            ("GET", f"{PHOTOS}/{PHOTO}"): answer(200, PHOTO_BODY),
            ("GET", f"{PHOTOS}/{PHOTO}/links"): answer(200, LINKS),
            ("GET", f"{PHOTOS}/{PHOTO}/thumbnail"): answer(
                200, b"\xff\xd8thumb", **{"Content-Type": "image/jpeg", "ETag": '"e-t"'}
            ),
            ("DELETE", f"{PHOTOS}/{PHOTO}"): answer(204),
        }
    )
    assert [p.photo_id for p in await client.photos(TOKEN)] == [PHOTO]
    assert (await client.photo(TOKEN, str(PHOTO))).sha256 == "ab" * 32
    links = await client.links(TOKEN, PHOTO)
    assert links.display == LINKS["display"]
    assert links.expires_at == datetime(2026, 11, 28, 10, 15, tzinfo=UTC)
    content = await client.content(TOKEN, PHOTO, "thumbnail")
    assert (content.data, content.content_type, content.etag) == (
        b"\xff\xd8thumb",
        "image/jpeg",
        '"e-t"',
    )
    assert await client.delete(TOKEN, PHOTO) is None
    bearer_everywhere(peer)
    await client.aclose()


async def test_delete_of_a_pinned_photo_is_refused() -> None:
    client, _ = media(
        {
            ("DELETE", f"{PHOTOS}/{PHOTO}"): refused(
                409, "media.pinned", "该照片已用于已提交的申请，不能删除"
            )
        }
    )
    with pytest.raises(PeerRefused) as caught:
        await client.delete(TOKEN, PHOTO)
    assert (caught.value.status, caught.value.code) == (409, "media.pinned")
    await client.aclose()


async def test_citations_put_each_photo_once_with_the_candidates_token() -> None:
    from application_service.domain import errors

    application, certificate = uuid.uuid4(), uuid.uuid4()
    other = uuid.UUID("00000000-0000-4000-8000-0000000000f2")
    cite = f"/citations/{application}/{certificate}"
    client, peer = media(
        {
            ("PUT", f"{PHOTOS}/{PHOTO}{cite}"): answer(204),
            ("PUT", f"{PHOTOS}/{other}{cite}"): refused(
                404, "media.not_found", "照片不存在或已删除"
            ),
        }
    )
    citations = MediaCitations(client)
    await citations.cite(TOKEN, application, certificate, [PHOTO, PHOTO])
    assert [r.url.path for r in peer.seen] == [f"{PHOTOS}/{PHOTO}{cite}"]
    bearer_everywhere(peer)
    with pytest.raises(errors.PhotoDeleted) as caught:
        await citations.cite(TOKEN, application, certificate, [PHOTO, other])
    assert caught.value.code == "application.photo_deleted"
    await client.aclose()


async def test_a_citation_media_refuses_otherwise_is_unavailable() -> None:
    application, certificate = uuid.uuid4(), uuid.uuid4()
    client, _ = media(
        {
            ("PUT", f"{PHOTOS}/{PHOTO}/citations/{application}/{certificate}"): refused(
                401, "auth.invalid_token", "登录已失效"
            )
        }
    )
    with pytest.raises(PeerUnavailable) as caught:
        await MediaCitations(client).cite(TOKEN, application, certificate, [PHOTO])
    assert caught.value.status == 503
    await client.aclose()


async def test_an_unreachable_media_is_unavailable() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = MediaPeer("http://media", transport=httpx.MockTransport(boom))
    with pytest.raises(PeerUnavailable) as caught:
        await client.photos(TOKEN)
    assert (caught.value.status, caught.value.headers) == (503, {"Retry-After": "10"})
    await client.aclose()


@pytest.mark.parametrize("body", [{"photos": [{"photo_id": "x"}]}, {"items": []}, [PHOTO_BODY]])
async def test_an_unusable_photo_list_is_unavailable(body: Any) -> None:
    client, _ = media({("GET", PHOTOS): answer(200, body)})
    with pytest.raises(PeerUnavailable):
        await client.photos(TOKEN)
    await client.aclose()
