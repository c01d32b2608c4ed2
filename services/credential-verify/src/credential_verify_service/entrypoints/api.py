"""credential-verify's HTTP API: CHSI degree verification and certificate checks."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response, status
from pydantic import BaseModel, Field

from contracts.credential import CertificateExam
from credential_verify_service import bootstrap
from credential_verify_service.adapters.chsi import SIGNATURE_HEADER
from credential_verify_service.service_layer.certificates import CheckView
from credential_verify_service.service_layer.degrees import AuthorizationView, DegreeView
from credential_verify_service.settings import CredentialSettings
from servicekit.app import create_app, identity_verified_lifespan
from servicekit.auth import CurrentCandidate, TokenVerifier
from servicekit.context import correlation_id_of
from servicekit.health import platform_kafka_check
from servicekit.models import StrictRequest
from servicekit.openapi import errors

BASE = "/api/credentials"


class Strict(StrictRequest):
    """Request bodies: unknown fields and control characters refused (servicekit)."""


class AuthorizationRead(BaseModel):
    """A CHSI authorisation and how it ended."""

    authorization_id: uuid.UUID
    method: str = Field(description="qr_code or verification_code")
    status: str = Field(description="requested, approved, denied or expired")
    expires_at: datetime
    decided_at: datetime | None
    accepted_records: int = Field(description="records accepted as the candidate's own")
    refused_records: int = Field(description="records refused: another holder's name or ID")
    refused_fields: list[str] = Field(description="what differed: name, id_number")

    @classmethod
    def of(cls, view: AuthorizationView) -> AuthorizationRead:
        return cls(
            authorization_id=view.authorization_id,
            method=view.method,
            status=view.status,
            expires_at=view.expires_at,
            decided_at=view.decided_at,
            accepted_records=view.accepted_records,
            refused_records=view.refused_records,
            refused_fields=list(view.refused_fields),
        )


class QrRead(AuthorizationRead):
    """获取学信网二维码: the QR code to scan with the CHSI app, and what it encodes."""

    qr_png: str = Field(description="data:image/png;base64,...")
    qr_svg: str
    qr_content: str = Field(description="the URL the QR code encodes")


class DegreeRead(BaseModel):
    """查看已验证学历信息: one verified degree."""

    degree_ref: uuid.UUID
    name: str = Field(description="姓名 on the record")
    id_number_masked: str = Field(description="身份证号, masked")
    institution: str
    major_name: str
    level: str
    study_form: str
    category: str
    entry_year: int
    graduation_year: int
    conclusion: str
    certificate_number: str | None
    verified_at: datetime = Field(description="学信网验证时间")
    valid_until: date | None
    transcript: list[dict[str, Any]]

    @classmethod
    def of(cls, view: DegreeView) -> DegreeRead:
        d = view.degree
        return cls(
            degree_ref=view.degree_ref,
            name=view.holder_name,
            id_number_masked=view.id_number_masked,
            institution=d["institution"],
            major_name=d["major_name"],
            level=d["level"],
            study_form=d["study_form"],
            category=d["category"],
            entry_year=d["entry_year"],
            graduation_year=d["graduation_year"],
            conclusion=d["conclusion"],
            certificate_number=d.get("certificate_number"),
            verified_at=view.verified_at,
            valid_until=view.valid_until,
            transcript=d.get("transcript", []),
        )


class DegreeList(BaseModel):
    """The candidate's verified degrees."""

    degrees: list[DegreeRead]


class CodeRedeem(Strict):
    """在线验证码."""

    code: str = Field(min_length=1, max_length=40)


class CodeRedeemed(BaseModel):
    """The authorisation a verification code made, and the degree it verified."""

    authorization: AuthorizationRead
    degrees: list[DegreeRead]


class CheckCreate(Strict):
    """证书核验: which certificate, and the holder's ID number (must be the candidate's own)."""

    exam: CertificateExam
    certificate_number: str = Field(min_length=1, max_length=40)
    id_number: str = Field(min_length=1, max_length=32, description="身份证号, never stored")


class CheckRead(BaseModel):
    """A certificate check's result."""

    check_id: uuid.UUID
    exam: str
    certificate_number: str
    outcome: str = Field(description="verified or failed")
    reason_code: str | None
    details: dict[str, Any]
    checked_at: datetime

    @classmethod
    def of(cls, view: CheckView) -> CheckRead:
        return cls(
            check_id=view.check_id,
            exam=view.exam,
            certificate_number=view.certificate_number,
            outcome=view.outcome,
            reason_code=view.reason_code,
            details=view.details,
            checked_at=view.checked_at,
        )


class CallbackAck(BaseModel):
    """What became of a CHSI callback."""

    result: str = Field(description="recorded or duplicate")


def _service(request: Request) -> bootstrap.CredentialVerify:
    service: bootstrap.CredentialVerify = request.app.state.credential
    return service


Service = Annotated[bootstrap.CredentialVerify, Depends(_service)]


def attach(app: FastAPI, service: bootstrap.CredentialVerify, verifier: TokenVerifier) -> None:
    """Give the app its wired service and token verifier."""
    app.state.credential = service
    app.state.token_verifier = verifier


def build_app(
    start: Callable[[], Awaitable[bootstrap.CredentialVerify]] = bootstrap.start,
) -> FastAPI:
    """The credential-verify API; `start` builds the wired service (tests give their own)."""

    lifespan = identity_verified_lifespan(
        "credential-verify", start, attach, lambda: CredentialSettings().identity_url
    )

    async def database_ready() -> None:
        await app.state.credential.pool.fetchval("SELECT 1")

    app = create_app(
        "credential-verify",
        version="0.1.0",
        max_body_bytes=16 * 1024,
        health_checks={"postgres": database_ready},
        advisory_checks={"kafka": platform_kafka_check()},  # the outbox holds writes
        lifespan=lifespan,
    )

    @app.post(
        f"{BASE}/degree-authorizations",
        status_code=status.HTTP_201_CREATED,
        response_model=QrRead,
        tags=["degrees"],
        responses=errors(502),
    )
    async def start_qr(request: Request, service: Service, candidate: CurrentCandidate) -> QrRead:
        """获取学信网二维码: open a CHSI authorisation and get its QR code."""
        qr = await service.degrees.start_qr(
            uuid.UUID(candidate.account_id), correlation_id=correlation_id_of(request)
        )
        base = AuthorizationRead.of(qr.authorization)
        return QrRead(
            **base.model_dump(),
            qr_png="data:image/png;base64," + base64.b64encode(qr.png).decode("ascii"),
            qr_svg=qr.svg,
            qr_content=qr.authorization.qr_content or "",
        )

    @app.get(
        f"{BASE}/degree-authorizations/{{authorization_id}}",
        response_model=AuthorizationRead,
        tags=["degrees"],
        responses=errors(410),
    )
    async def authorization_status(
        authorization_id: uuid.UUID,
        service: Service,
        candidate: CurrentCandidate,
        response: Response,
    ) -> AuthorizationRead:
        """授权状态: poll until approved, denied or expired."""
        response.headers["Cache-Control"] = "no-store"
        view = await service.degrees.status(uuid.UUID(candidate.account_id), authorization_id)
        return AuthorizationRead.of(view)

    @app.post(
        f"{BASE}/chsi/callback",
        response_model=CallbackAck,
        tags=["providers"],
        responses=errors(400, 401, 410, 422, 502),  # signed by CHSI: no bearer token
    )
    async def chsi_callback(request: Request, service: Service) -> CallbackAck:
        """CHSI's signed notice that a candidate decided (X-CHSI-Signature)."""
        raw = await request.body()
        result = await service.degrees.handle_callback(raw, request.headers.get(SIGNATURE_HEADER))
        return CallbackAck(result=result)

    @app.post(
        f"{BASE}/verification-codes",
        status_code=status.HTTP_201_CREATED,
        response_model=CodeRedeemed,
        tags=["degrees"],
        responses=errors(410, 502),
    )
    async def redeem(
        body: CodeRedeem, request: Request, service: Service, candidate: CurrentCandidate
    ) -> CodeRedeemed:
        """在线验证码: verify a degree by its CHSI online verification code."""
        candidate_id = uuid.UUID(candidate.account_id)
        view, verified = await service.degrees.redeem_code(
            candidate_id, body.code, correlation_id=correlation_id_of(request)
        )
        refs = {degree.degree_ref for degree in verified}
        mine = await service.degrees.degrees(candidate_id)
        degrees = [DegreeRead.of(d) for d in mine if d.degree_ref in refs]
        return CodeRedeemed(authorization=AuthorizationRead.of(view), degrees=degrees)

    @app.get(f"{BASE}/degrees", response_model=DegreeList, tags=["degrees"])
    async def degrees(service: Service, candidate: CurrentCandidate) -> DegreeList:
        """查看已验证学历信息: the candidate's verified degrees."""
        views = await service.degrees.degrees(uuid.UUID(candidate.account_id))
        return DegreeList(degrees=[DegreeRead.of(v) for v in views])

    @app.post(
        f"{BASE}/certificate-checks",
        status_code=status.HTTP_201_CREATED,
        response_model=CheckRead,
        tags=["certificates"],
        responses=errors(502),
    )
    async def check(
        body: CheckCreate, request: Request, service: Service, candidate: CurrentCandidate
    ) -> CheckRead:
        """证书核验: check a CET, PETS, NCRE or NIT certificate with the exam authority."""
        view = await service.certificates.check(
            uuid.UUID(candidate.account_id),
            body.exam,
            body.certificate_number,
            body.id_number,
            correlation_id=correlation_id_of(request),
        )
        return CheckRead.of(view)

    @app.get(
        f"{BASE}/certificate-checks/{{check_id}}", response_model=CheckRead, tags=["certificates"]
    )
    async def check_result(
        check_id: uuid.UUID, service: Service, candidate: CurrentCandidate
    ) -> CheckRead:
        """One of the candidate's certificate checks."""
        view = await service.certificates.get(uuid.UUID(candidate.account_id), check_id)
        return CheckRead.of(view)

    return app


app = build_app()
