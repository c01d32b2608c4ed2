"""学信网 (CHSI) adapter: QR authorisations, online verification codes, signed callbacks.

Speaks exactly the protocol of docs/providers.md. Lookups and polls are retried on provider
faults; creating an authorisation is retried only when the request never reached CHSI (a connect
error), since a retry after a timeout could create a second ticket. Every provider fault and an
open circuit become ChsiUnavailable; 404/410 become the domain's unknown/expired errors.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal
from uuid import UUID

import httpx
from pydantic import AwareDatetime, Field, ValidationError

from credential_verify_service.adapters._http import (
    ProviderConfig,
    ProviderFault,
    ProviderTransport,
    StrictModel,
    parse_json,
    retry_any_fault,
    retry_connect_only,
    unexpected_status,
)
from credential_verify_service.domain.codes import parse_verification_code
from credential_verify_service.domain.errors import (
    AuthorizationNotFound,
    CallbackMalformed,
    CallbackSignatureInvalid,
    CallbackSignatureMalformed,
    CallbackStale,
    ChsiUnavailable,
    VerificationCodeExpired,
    VerificationCodeUnknown,
)
from credential_verify_service.domain.records import QualificationRecord, TranscriptEntry
from servicekit.resilience import CircuitBreaker, RetryPolicy

SIGNATURE_HEADER = "X-CHSI-Signature"
DEFAULT_TOLERANCE = 300  # seconds


# --- wire models (docs/providers.md) -------------------------------------------------------------


class TranscriptCourseModel(StrictModel):
    name: str = Field(min_length=1)
    code: str | None = None
    credits: float | None = Field(default=None, ge=0)
    hours: int | None = Field(default=None, ge=0)
    score: str | None = None
    assessment: Literal["考试", "考查"] | None = None


class RecordModel(StrictModel):
    record_id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    gender: str
    id_number: str = Field(min_length=1)
    birth_date: date
    institution: str = Field(min_length=1)
    level: Literal["本科", "专科", "硕士研究生", "博士研究生", "第二学士学位"]
    major: str = Field(min_length=1)
    duration_years: int = Field(ge=0)
    category: str = Field(min_length=1)
    study_form: str = Field(min_length=1)
    entry_date: date
    graduation_date: date
    conclusion: str = Field(min_length=1)
    certificate_number: str | None = None
    transcript: list[TranscriptCourseModel] = Field(default_factory=list)

    def to_domain(self) -> QualificationRecord:
        return QualificationRecord(
            record_id=self.record_id,
            name=self.name,
            gender=self.gender,
            id_number=self.id_number,
            birth_date=self.birth_date,
            institution=self.institution,
            level=self.level,
            major=self.major,
            duration_years=self.duration_years,
            category=self.category,
            study_form=self.study_form,
            entry_date=self.entry_date,
            graduation_date=self.graduation_date,
            conclusion=self.conclusion,
            certificate_number=self.certificate_number,
            transcript=tuple(
                TranscriptEntry(
                    name=c.name,
                    code=c.code,
                    credits=c.credits,
                    hours=c.hours,
                    score=c.score,
                    assessment=c.assessment,
                )
                for c in self.transcript
            ),
        )


class CreatedAuthorizationModel(StrictModel):
    ticket: str = Field(min_length=1, max_length=200)
    qr_content: str = Field(min_length=1)
    expires_at: AwareDatetime


class AuthorizationModel(StrictModel):
    ticket: str = Field(min_length=1)
    state: str
    status: Literal["pending", "approved", "denied", "expired"]
    expires_at: AwareDatetime
    decided_at: AwareDatetime | None = None
    records: list[RecordModel] = Field(default_factory=list)


class LookupModel(StrictModel):
    code: str
    valid_until: date
    record: RecordModel


class CallbackModel(StrictModel):
    ticket: str = Field(min_length=1)
    state: str
    status: Literal["approved", "denied"]
    decided_at: AwareDatetime


class ErrorModel(StrictModel):
    error: str
    message: str | None = None


# --- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreatedAuthorization:
    """CHSI's answer to a new QR authorisation: the QR code encodes `qr_content`."""

    ticket: str
    qr_content: str
    expires_at: datetime


@dataclass(frozen=True)
class AuthorizationSnapshot:
    """The state of a ticket at CHSI; `records` only when approved."""

    ticket: str
    state: str
    status: Literal["pending", "approved", "denied", "expired"]
    expires_at: datetime
    decided_at: datetime | None
    records: tuple[QualificationRecord, ...]


@dataclass(frozen=True)
class VerificationCodeLookup:
    """A verification code's record and the last day the code is valid."""

    code: str
    valid_until: date
    record: QualificationRecord


@dataclass(frozen=True)
class ChsiCallback:
    """A verified callback body."""

    ticket: str
    state: str
    status: Literal["approved", "denied"]
    decided_at: datetime


def _unavailable(detail: str, retry_after: int | None) -> Exception:
    return ChsiUnavailable(detail, retry_after=retry_after)


def _error_code(response: httpx.Response) -> str | None:
    try:
        return ErrorModel.model_validate_json(response.content).error
    except ValidationError:
        return None


class ChsiClient:
    """Async client of CHSI's authorisation and verification-code APIs."""

    name = "chsi"

    def __init__(
        self,
        config: ProviderConfig,
        *,
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._transport = ProviderTransport(
            self.name, config, client=client, retry=retry, breaker=breaker
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self._transport.breaker

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> ChsiClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def create_authorization(self, state: UUID, callback_url: str) -> CreatedAuthorization:
        """POST /api/v1/authorizations; retried only on connect errors."""

        async def call() -> CreatedAuthorization:
            response = await self._transport.send(
                "POST",
                "/api/v1/authorizations",
                json={"state": str(state), "callback_url": callback_url},
            )
            if response.status_code not in (200, 201):
                raise unexpected_status(self.name, response)
            body = parse_json(self.name, response, CreatedAuthorizationModel)
            return CreatedAuthorization(body.ticket, body.qr_content, body.expires_at)

        return await self._transport.run(
            call, retry_if=retry_connect_only, unavailable=_unavailable
        )

    async def get_authorization(self, ticket: str) -> AuthorizationSnapshot:
        """GET /api/v1/authorizations/{ticket}; unknown ticket → AuthorizationNotFound."""
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,200}", ticket):
            raise AuthorizationNotFound("ticket is not url-safe; not sent to CHSI")

        async def call() -> AuthorizationSnapshot:
            response = await self._transport.send("GET", f"/api/v1/authorizations/{ticket}")
            if response.status_code == 404:
                raise AuthorizationNotFound("CHSI does not know the ticket")
            if response.status_code != 200:
                raise unexpected_status(self.name, response)
            body = parse_json(self.name, response, AuthorizationModel)
            return AuthorizationSnapshot(
                ticket=body.ticket,
                state=body.state,
                status=body.status,
                expires_at=body.expires_at,
                decided_at=body.decided_at,
                records=tuple(record.to_domain() for record in body.records),
            )

        return await self._transport.run(call, retry_if=retry_any_fault, unavailable=_unavailable)

    async def lookup_verification_code(self, code: str) -> VerificationCodeLookup:
        """POST /api/v1/verification-codes/lookup; malformed codes are refused, never sent."""
        value = parse_verification_code(code).value

        async def call() -> VerificationCodeLookup:
            response = await self._transport.send(
                "POST", "/api/v1/verification-codes/lookup", json={"code": value}
            )
            if response.status_code == 404:
                raise VerificationCodeUnknown(f"CHSI answered 404 ({_error_code(response)})")
            if response.status_code == 410:
                raise VerificationCodeExpired(f"CHSI answered 410 ({_error_code(response)})")
            if response.status_code != 200:
                raise unexpected_status(self.name, response)
            body = parse_json(self.name, response, LookupModel)
            return VerificationCodeLookup(body.code, body.valid_until, body.record.to_domain())

        return await self._transport.run(call, retry_if=retry_any_fault, unavailable=_unavailable)


# --- callbacks ----------------------------------------------------------------------------------

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def compute_signature(secret: str, timestamp: int, raw_body: bytes) -> str:
    """v1 = HMAC-SHA256(key = client secret, msg = f"{t}." + raw body), hex."""
    message = f"{timestamp}.".encode() + raw_body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_callback(secret: str, raw_body: bytes, timestamp: int) -> str:
    """The X-CHSI-Signature header value for a body (what CHSI and the sandbox send)."""
    return f"t={timestamp},v1={compute_signature(secret, timestamp, raw_body)}"


def _parse_header(header_value: str) -> tuple[int, list[str]]:
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header_value.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise CallbackSignatureMalformed(f"header element {part.strip()!r} is not key=value")
        if key == "t":
            if timestamp is not None or not (value.isascii() and value.isdigit()):
                raise CallbackSignatureMalformed("t must appear once, as unix seconds")
            if len(value) > 12:
                raise CallbackSignatureMalformed("t is out of range")
            timestamp = int(value)
        elif key == "v1":
            if not _HEX64.fullmatch(value):
                raise CallbackSignatureMalformed("v1 must be 64 hex characters")
            signatures.append(value.lower())
        # unknown schemes (v0, v2...) are ignored, as with versioned signature headers
    if timestamp is None or not signatures:
        raise CallbackSignatureMalformed("header needs both t= and v1=")
    return timestamp, signatures


def verify_callback_signature(
    secret: str,
    header_value: str | None,
    raw_body: bytes,
    now: datetime,
    tolerance: int = DEFAULT_TOLERANCE,
) -> int:
    """Check X-CHSI-Signature; returns the signed timestamp.

    Raises CallbackSignatureMalformed (missing or unreadable header), CallbackSignatureInvalid
    (no v1 matches, compared in constant time) or CallbackStale (|now - t| > tolerance; checked
    after the signature, so an attacker learns nothing about the clock).
    """
    if not header_value or not header_value.strip():
        raise CallbackSignatureMalformed(f"missing {SIGNATURE_HEADER} header")
    timestamp, signatures = _parse_header(header_value)
    expected = compute_signature(secret, timestamp, raw_body)
    matched = False
    for candidate in signatures:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise CallbackSignatureInvalid()
    skew = abs(now.timestamp() - timestamp)
    if skew > tolerance:
        raise CallbackStale(f"callback signed {skew:.0f}s away from now (tolerance {tolerance}s)")
    return timestamp


def parse_callback(raw_body: bytes) -> ChsiCallback:
    """Parse a callback body (after verify_callback_signature); raises CallbackMalformed."""
    try:
        body = CallbackModel.model_validate_json(raw_body)
    except ValidationError as exc:
        raise CallbackMalformed(
            f"callback body does not match the protocol: {exc.error_count()} error(s)"
        ) from exc
    return ChsiCallback(body.ticket, body.state, body.status, body.decided_at)


__all__ = [
    "SIGNATURE_HEADER",
    "AuthorizationSnapshot",
    "ChsiCallback",
    "ChsiClient",
    "CreatedAuthorization",
    "ProviderConfig",
    "ProviderFault",
    "VerificationCodeLookup",
    "compute_signature",
    "parse_callback",
    "sign_callback",
    "verify_callback_signature",
]
