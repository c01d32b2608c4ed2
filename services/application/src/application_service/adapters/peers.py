"""The candidate portal's clients of identity, credential-verify and media, over their HTTP APIs.

The portal never imports another service: it calls their APIs with the signed-in candidate's
own access token (Authorization: Bearer), so each service decides for itself what this
candidate may see and do. The shared behaviour (timeouts, `PeerRefused` for 4xx with the
peer's code and Chinese message and field errors, `PeerUnavailable` = 503 with Retry-After
for everything else) comes from `servicekit.peers`:

    identity = IdentityPeer(settings.identity_url)
    credential = CredentialPeer(settings.credential_url)
    media = MediaPeer(settings.media_url)
    profile = await identity.profile(token)
    qr = await credential.start_qr(token)
    photo = await media.upload(token, data, "证书.jpg", "image/jpeg")

Nothing here logs a token, a body, an ID number or a mobile number; the ID number a
certificate check needs is sent in the request body only, and kept nowhere.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from application_service.domain import errors
from servicekit.identity_client import forwarded_for
from servicekit.peers import PeerClient, PeerFieldError, PeerRefused, PeerUnavailable

__all__ = [
    "Authorization",
    "CertificateCheck",
    "CodeRedeemed",
    "CredentialPeer",
    "IdentityPeer",
    "MediaCitations",
    "MediaPeer",
    "PeerFieldError",
    "PeerRefused",
    "PeerUnavailable",
    "Photo",
    "PhotoContent",
    "PhotoLinks",
    "Profile",
    "QrAuthorization",
    "QuickEntry",
    "VerifiedDegree",
]

Model = TypeVar("Model", bound=BaseModel)


class _Read(BaseModel):
    """A peer's answer: immutable, unknown fields ignored (peers may add fields)."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class _Peer(PeerClient):
    """PeerClient plus parsing of answers into the models below."""

    def _model(self, model: type[Model], response: httpx.Response) -> Model:
        try:
            return model.model_validate(self._json(response))
        except ValidationError as exc:
            raise self._unavailable(
                f"{self.peer}'s answer is not a {model.__name__}: "
                f"{[e['loc'] for e in exc.errors()]}"
            ) from exc

    def _list(self, model: type[Model], response: httpx.Response, key: str | None) -> list[Model]:
        try:
            raw: Any = self._json(response)[key] if key else response.json()
            return TypeAdapter(list[model]).validate_python(raw)  # type: ignore[valid-type]
        except (ValidationError, KeyError, ValueError) as exc:
            raise self._unavailable(
                f"{self.peer}'s answer is not a list of {model.__name__}"
            ) from exc


# --- identity ---------------------------------------------------------------------------------


class Profile(_Read):
    """个人信息 (identity's `GET /api/identity/me`); ID and mobile numbers arrive masked."""

    candidate_id: uuid.UUID
    name: str
    gender: Literal["male", "female"]
    id_number_masked: str
    admission_ticket_number: str
    exam_district: str
    registration_district: str
    major_code: str
    passed_courses: tuple[str, ...]
    mobile_masked: str
    email: str | None = None
    ethnicity: str | None = None
    household_type: str | None = None
    education: str | None = None
    occupation: str | None = None
    political_status: str | None = None


class QuickEntry(_Read):
    """快捷入口 and its window state."""

    key: str
    title: str
    state: Literal["open", "closed"]
    message: str

    @property
    def is_open(self) -> bool:
        """Whether the entry may be followed now."""
        return self.state == "open"


class IdentityPeer(_Peer):
    """Registration and the personal centre (个人中心) on identity's API."""

    peer = "identity"
    unavailable_message = "统一身份认证服务暂时不可用，请稍后再试"

    async def register(
        self,
        ticket_number: str,
        id_number: str,
        name: str,
        password: str,
        mobile: str,
        *,
        sms_code: str,
        captcha_id: str,
        captcha_answer: str,
        client_ip: str | None = None,
    ) -> uuid.UUID:
        """考生注册 against the roster, behind identity's captcha; the new candidate id.
        Refusals carry `fields` (request.invalid's per-field errors, or the one field a domain
        refusal concerns: `captcha_answer` for the captcha's, `sms_code` for the SMS code's);
        `identity.roster_mismatch`,
        `identity.already_registered` and `identity.registration_locked` (429 with Retry-After)
        concern the whole form.
        `client_ip`, the candidate's address, goes in X-Forwarded-For (identity throttles per
        address and believes it from the portal only)."""
        body = {"ticket_number": ticket_number, "id_number": id_number, "name": name,
                "password": password, "mobile": mobile, "sms_code": sms_code,
                "captcha_id": captcha_id, "captcha_answer": captcha_answer}  # fmt: skip
        answer = self._json(
            await self._call(
                "POST", "/api/identity/candidates", json=body, headers=forwarded_for(client_ip)
            )
        )
        try:
            return uuid.UUID(str(answer["candidate_id"]))
        except (KeyError, ValueError) as exc:
            raise self._unavailable("identity's registration answer lacks candidate_id") from exc

    async def send_sms_code(
        self, mobile: str, *, captcha_id: str, captcha_answer: str, client_ip: str | None = None
    ) -> str:
        """获取短信验证码 for registration, behind identity's captcha; the masked number it went
        to. Refusals carry `fields` (`mobile`, `captcha_answer`); `identity.sms_send_locked` is
        429 with Retry-After; the SMS gateway away is PeerUnavailable (503)."""
        body = {"mobile": mobile, "purpose": "register", "captcha_id": captcha_id,
                "captcha_answer": captcha_answer}  # fmt: skip
        answer = self._json(
            await self._call(
                "POST", "/api/identity/sms-codes", json=body, headers=forwarded_for(client_ip)
            )
        )
        masked = answer.get("mobile_masked")
        if not isinstance(masked, str):
            raise self._unavailable("identity's SMS code answer lacks mobile_masked")
        return masked

    async def profile(self, token: str) -> Profile:
        """个人信息 of the token's candidate."""
        return self._model(Profile, await self._call("GET", "/api/identity/me", token=token))

    async def change_contact(
        self, token: str, *, mobile: str | None = None, email: str | None = None
    ) -> Profile:
        """修改手机号码 and/or 电子邮箱 ("" clears the e-mail); the updated profile."""
        body = {k: v for k, v in (("mobile", mobile), ("email", email)) if v is not None}
        response = await self._call("PATCH", "/api/identity/me", json=body, token=token)
        return self._model(Profile, response)

    async def entries(self, token: str) -> list[QuickEntry]:
        """快捷入口 and whether each is open."""
        response = await self._call("GET", "/api/identity/me/entries", token=token)
        return self._list(QuickEntry, response, None)


# --- credential-verify ------------------------------------------------------------------------

CREDENTIALS = "/api/credentials"


class Authorization(_Read):
    """A CHSI authorisation: `requested` until approved, denied or expired."""

    authorization_id: uuid.UUID
    method: str = Field(description="qr_code or verification_code")
    status: str = Field(description="requested, approved, denied or expired")
    expires_at: datetime
    decided_at: datetime | None = None
    accepted_records: int = 0
    refused_records: int = 0
    refused_fields: tuple[str, ...] = ()

    @property
    def pending(self) -> bool:
        """Still waiting for the candidate's decision in the CHSI app (keep polling)."""
        return self.status == "requested"

    def seconds_left(self, now: datetime) -> int:
        """Whole seconds until the authorisation expires (0 once it has): the countdown."""
        return max(0, int((self.expires_at - now).total_seconds()))


class QrAuthorization(Authorization):
    """获取学信网二维码: the authorisation and its QR code (PNG data URL, SVG markup, and the
    URL it encodes). Asking again while one is live returns the same one."""

    qr_png: str = Field(description="data:image/png;base64,...")
    qr_svg: str
    qr_content: str


class VerifiedDegree(_Read):
    """查看已验证学历信息: one verified degree, as credential-verify lists it."""

    degree_ref: uuid.UUID
    name: str
    id_number_masked: str
    institution: str
    major_name: str
    level: str
    study_form: str
    category: str
    entry_year: int
    graduation_year: int
    conclusion: str
    certificate_number: str | None = None
    verified_at: datetime
    valid_until: date | None = None
    transcript: tuple[dict[str, Any], ...] = ()


class _Degrees(_Read):
    degrees: tuple[VerifiedDegree, ...]


class CodeRedeemed(_Read):
    """What an online verification code verified."""

    authorization: Authorization
    degrees: tuple[VerifiedDegree, ...]


class CertificateCheck(_Read):
    """证书核验's result: `verified`, or `failed` with a reason code (a check that ran)."""

    check_id: uuid.UUID
    exam: str
    certificate_number: str
    outcome: str = Field(description="verified or failed")
    reason_code: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    checked_at: datetime

    @property
    def verified(self) -> bool:
        """Whether the exam authority confirmed the certificate."""
        return self.outcome == "verified"


class CredentialPeer(_Peer):
    """Degree verification with CHSI and certificate checks on credential-verify's API."""

    peer = "credential"
    unavailable_message = "学历与证书核验服务暂时不可用，请稍后再试"

    async def start_qr(self, token: str) -> QrAuthorization:
        """获取学信网二维码: open (or reuse the live) CHSI authorisation with its QR code."""
        response = await self._call("POST", f"{CREDENTIALS}/degree-authorizations", token=token)
        qr = self._model(QrAuthorization, response)
        if not qr.qr_png.startswith("data:image/png;base64,"):
            raise self._unavailable("credential-verify's QR code is not a PNG data URL")
        return qr

    async def authorization(self, token: str, authorization_id: uuid.UUID | str) -> Authorization:
        """授权状态 of one of the candidate's authorisations (poll while `pending`)."""
        path = f"{CREDENTIALS}/degree-authorizations/{uuid.UUID(str(authorization_id))}"
        return self._model(Authorization, await self._call("GET", path, token=token))

    async def degrees(self, token: str) -> list[VerifiedDegree]:
        """查看已验证学历信息: the candidate's verified degrees with their transcripts."""
        response = await self._call("GET", f"{CREDENTIALS}/degrees", token=token)
        return list(self._model(_Degrees, response).degrees)

    async def redeem_code(self, token: str, code: str) -> CodeRedeemed:
        """在线验证码: verify a degree by its CHSI online verification code."""
        response = await self._call(
            "POST", f"{CREDENTIALS}/verification-codes", json={"code": code}, token=token
        )
        return self._model(CodeRedeemed, response)

    async def check_certificate(
        self, token: str, exam: str, certificate_number: str, id_number: str
    ) -> CertificateCheck:
        """证书核验 (exam: cet4, cet6, pets, ncre, nit). `id_number` must be the candidate's own
        (credential-verify refuses another's); it is sent, never kept or logged here."""
        body = {"exam": str(exam), "certificate_number": certificate_number,
                "id_number": id_number}  # fmt: skip
        response = await self._call(
            "POST", f"{CREDENTIALS}/certificate-checks", json=body, token=token
        )
        return self._model(CertificateCheck, response)

    async def certificate_check(self, token: str, check_id: uuid.UUID | str) -> CertificateCheck:
        """One of the candidate's certificate checks (the API has no list of them)."""
        path = f"{CREDENTIALS}/certificate-checks/{uuid.UUID(str(check_id))}"
        return self._model(CertificateCheck, await self._call("GET", path, token=token))


# --- media ------------------------------------------------------------------------------------

PHOTOS = "/api/media/photos"
Variant = Literal["display", "thumbnail", "original"]


class Photo(_Read):
    """A stored certificate photo. The `*_url`s are media API paths that need the bearer token
    (proxy them, or ask `links` for presigned URLs a browser can load)."""

    photo_id: uuid.UUID
    owner_id: uuid.UUID
    format: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    uploaded_at: datetime
    pinned: bool
    display_url: str
    thumbnail_url: str
    original_url: str


class _Photos(_Read):
    photos: tuple[Photo, ...]


class PhotoLinks(_Read):
    """Presigned URLs of a photo's copies, valid until `expires_at`."""

    display: str
    thumbnail: str
    original: str
    expires_at: datetime


class PhotoViewRecord(_Read):
    """One time staff were given one of the candidate's photos (media records it)."""

    photo_id: uuid.UUID
    viewed_at: datetime
    given: str
    roles: tuple[str, ...]


class _PhotoViews(_Read):
    views: tuple[PhotoViewRecord, ...]


class PhotoContent(_Read):
    """One copy of a photo's bytes, as media streamed them."""

    data: bytes
    content_type: str
    etag: str | None = None


class MediaPeer(_Peer):
    """Certificate photos on media's API: upload, list, show, links, bytes, delete."""

    peer = "media"
    unavailable_message = "照片服务暂时不可用，请稍后再试"

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        upload_timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, timeout=timeout, transport=transport)
        self._upload_timeout = upload_timeout

    @staticmethod
    def _photo_path(photo_id: uuid.UUID | str, suffix: str = "") -> str:
        return f"{PHOTOS}/{uuid.UUID(str(photo_id))}{suffix}"

    async def upload(self, token: str, data: bytes, filename: str, content_type: str) -> Photo:
        """上传证书照片: the bytes exactly as given (multipart field `file`). Media's refusals
        pass through (`media.too_large`, `media.resolution_too_low`, `media.unsupported_type`,
        ...); `media.busy` / storage trouble is PeerUnavailable with media's Retry-After."""
        response = await self._call(
            "POST",
            PHOTOS,
            files={"file": (filename, data, content_type)},
            token=token,
            timeout=self._upload_timeout,
        )
        return self._model(Photo, response)

    async def photos(self, token: str) -> list[Photo]:
        """我的证书照片, newest first."""
        return list(self._model(_Photos, await self._call("GET", PHOTOS, token=token)).photos)

    async def photo(self, token: str, photo_id: uuid.UUID | str) -> Photo:
        """查看照片信息 (404 `media.not_found` for another's photo)."""
        return self._model(Photo, await self._call("GET", self._photo_path(photo_id), token=token))

    async def links(self, token: str, photo_id: uuid.UUID | str) -> PhotoLinks:
        """Presigned URLs of the display copy, thumbnail and original, and their expiry."""
        response = await self._call("GET", self._photo_path(photo_id, "/links"), token=token)
        return self._model(PhotoLinks, response)

    async def views(self, token: str) -> list[PhotoViewRecord]:
        """我的照片查看记录: when staff were given the candidate's photos, newest first."""
        response = await self._call("GET", f"{PHOTOS}/views", token=token)
        return list(self._model(_PhotoViews, response).views)

    async def content(
        self, token: str, photo_id: uuid.UUID | str, variant: Variant = "display"
    ) -> PhotoContent:
        """查看照片: one copy's bytes, to stream to the browser through the portal."""
        response = await self._call(
            "GET",
            self._photo_path(photo_id, f"/{variant}"),
            token=token,
            headers={"Accept": "image/jpeg, image/png"},
        )
        return PhotoContent(
            data=response.content,
            content_type=response.headers.get("content-type", "application/octet-stream"),
            etag=response.headers.get("etag"),
        )

    async def delete(self, token: str, photo_id: uuid.UUID | str) -> None:
        """删除照片 (409 `media.pinned` once a submitted application cites it)."""
        await self._call("DELETE", self._photo_path(photo_id), token=token)

    async def cite(
        self,
        token: str,
        photo_id: uuid.UUID,
        application_id: uuid.UUID,
        certificate_id: uuid.UUID,
    ) -> None:
        """引用照片: media records that the certificate cites the candidate's photo, so that it
        can no longer be deleted nor swept (ADR 0015); 404 `media.not_found` for a deleted or
        another's photo."""
        await self._call(
            "PUT",
            self._photo_path(photo_id, f"/citations/{application_id}/{certificate_id}"),
            token=token,
        )


class MediaCitations:
    """The service layer's `PhotoCitations` on media's API (the candidate's own token)."""

    def __init__(self, media: MediaPeer) -> None:
        self._media = media

    async def cite(
        self,
        credential: str,
        application_id: uuid.UUID,
        certificate_id: uuid.UUID,
        photo_ids: Sequence[uuid.UUID],
    ) -> None:
        """Every photo cited before the certificate is recorded; a photo media no longer has
        (deleted meanwhile, or never the candidate's) is `application.photo_deleted`."""
        for photo_id in dict.fromkeys(photo_ids):
            try:
                await self._media.cite(credential, photo_id, application_id, certificate_id)
            except PeerRefused as exc:
                if exc.status == 404:
                    raise errors.PhotoDeleted(f"media has no live photo {photo_id}") from exc
                raise self._media._unavailable(
                    f"media refused citing {photo_id}: {exc.code}"
                ) from exc
