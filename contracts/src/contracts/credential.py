"""Events published by the credential-verify service: CHSI degree checks, certificate checks."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import AwareDatetime, ConfigDict, Field

from contracts import _examples as ex
from contracts.base import (
    CandidateId,
    ContractEvent,
    ContractModel,
    ReasonText,
    ServiceContract,
    Stream,
)

DEGREE_STREAM = Stream(
    service="credential-verify",
    stream_type="credential.degree",
    topic="credential.degree.v1",
    id_field="candidate_id",
    description="学历验证: one stream per candidate, all CHSI authorisations and verified degrees",
)
CERTIFICATE_STREAM = Stream(
    service="credential-verify",
    stream_type="credential.certificate",
    topic="credential.certificate.v1",
    id_field="check_id",
    description="证书核验: one stream per certificate check against the issuing body",
)
DEGREE_TOPIC = DEGREE_STREAM.topic
CERTIFICATE_TOPIC = CERTIFICATE_STREAM.topic


class AuthorizationMethod(StrEnum):
    """How the candidate lets CHSI (学信网) release their degrees."""

    QR_CODE = "qr_code"
    VERIFICATION_CODE = "verification_code"


class DegreeLevel(StrEnum):
    """层次: the level of a qualification."""

    JUNIOR_COLLEGE = "junior_college"
    BACHELOR = "bachelor"
    MASTER = "master"
    DOCTOR = "doctor"

    @property
    def label(self) -> str:
        """层次 in Chinese."""
        return {"junior_college": "专科", "bachelor": "本科", "master": "硕士研究生",
                "doctor": "博士研究生"}[self.value]  # fmt: skip


class AssessmentMethod(StrEnum):
    """考核方式 of a transcript course: by examination (考试) or by assessment (考查)."""

    EXAMINATION = "examination"
    ASSESSMENT = "assessment"


class TranscriptCourse(ContractModel):
    """One course of a degree's transcript (成绩单), as released by CHSI or the institution."""

    name: str = Field(min_length=1, max_length=200, description="课程名称, as printed")
    code: str | None = Field(default=None, max_length=20, description="course code, if printed")
    credits: float | None = Field(default=None, ge=0, description="学分")
    hours: int | None = Field(default=None, ge=0, description="学时 (1 credit = 18 hours)")
    score: str | None = Field(
        default=None, max_length=20, description="成绩 as printed: a number or a grade"
    )
    assessment: AssessmentMethod | None = Field(default=None, description="考核方式, if printed")


class VerifiedDegree(ContractModel):
    """学历: one qualification CHSI verified for the candidate."""

    degree_ref: UUID = Field(description="this service's id of the verified record; cite this")
    institution: str = Field(min_length=1, max_length=200, description="院校名称")
    major_name: str = Field(min_length=1, max_length=200, description="专业名称")
    level: DegreeLevel = Field(description="层次")
    study_form: str = Field(min_length=1, max_length=50, description="学习形式, e.g. 普通全日制")
    category: str = Field(min_length=1, max_length=50, description="学历类别, e.g. 普通高等教育")
    entry_year: int = Field(ge=1950, le=2100, description="入学年份")
    graduation_year: int = Field(ge=1950, le=2100, description="毕业年份")
    conclusion: str = Field(min_length=1, max_length=20, description="毕结业结论, e.g. 毕业")
    certificate_number: str | None = Field(
        default=None, pattern=r"^\d{18}$", description="证书编号 (18 digits), if CHSI released it"
    )
    holder_matches_candidate: bool = Field(
        description="the record's name and ID number are the candidate's (本人学历)"
    )
    chsi_verified_at: AwareDatetime = Field(description="学信网验证时间")
    transcript: list[TranscriptCourse] = Field(
        default_factory=list, description="transcript courses, where CHSI released them"
    )


class CertificateExam(StrEnum):
    """The examination that issued a certificate checked against its issuing body."""

    CET4 = "cet4"
    CET6 = "cet6"
    PETS = "pets"
    NCRE = "ncre"
    NIT = "nit"


class CertificateFailureReason(StrEnum):
    """Why a certificate check failed; each is a different thing for the candidate to fix."""

    NOT_FOUND = "not_found"
    HOLDER_MISMATCH = "holder_mismatch"
    MALFORMED_NUMBER = "malformed_number"
    BELOW_REQUIRED_LEVEL = "below_required_level"


class DegreeAuthorizationRequested(ContractEvent):
    """学信网授权请求: the candidate started a CHSI authorisation (QR code or online code)."""

    event_type: ClassVar[str] = "DegreeAuthorizationRequested"
    stream: ClassVar[Stream] = DEGREE_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "candidate_id": ex.CANDIDATE_ID,
                    "authorization_id": ex.AUTHORIZATION_ID,
                    "method": "qr_code",
                    "expires_at": "2025-03-01T10:15:00+08:00",
                }
            ]
        }
    )

    candidate_id: CandidateId = Field(description="the stream id")
    authorization_id: UUID = Field(description="this authorisation attempt")
    method: AuthorizationMethod = Field(description="获取学信网二维码 or 在线验证码")
    expires_at: AwareDatetime = Field(description="when the QR code or request lapses")


class DegreesVerified(ContractEvent):
    """学历已验证: CHSI released the candidate's chosen qualifications, now verified records."""

    event_type: ClassVar[str] = "DegreesVerified"
    stream: ClassVar[Stream] = DEGREE_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "candidate_id": ex.CANDIDATE_ID,
                    "authorization_id": ex.AUTHORIZATION_ID,
                    "degrees": [
                        {
                            "degree_ref": ex.DEGREE_REF,
                            "institution": "山西大学",
                            "major_name": "法律事务",
                            "level": "junior_college",
                            "study_form": "普通全日制",
                            "category": "普通高等教育",
                            "entry_year": 2018,
                            "graduation_year": 2021,
                            "conclusion": "毕业",
                            "certificate_number": "101082021050001234",
                            "holder_matches_candidate": True,
                            "chsi_verified_at": "2025-03-01T10:05:00+08:00",
                            "transcript": [
                                {
                                    "name": "民法学",
                                    "credits": 7,
                                    "score": "82",
                                    "assessment": "examination",
                                }
                            ],
                        }
                    ],
                    "valid_until": "2025-08-28",
                }
            ]
        }
    )

    candidate_id: CandidateId = Field(description="the stream id")
    authorization_id: UUID = Field(description="the authorisation that released these records")
    degrees: list[VerifiedDegree] = Field(description="the verified qualifications")
    valid_until: date | None = Field(
        default=None, description="last day the verification may be relied on (CHSI: 180 days)"
    )


class DegreeAuthorizationExpired(ContractEvent):
    """学信网授权过期: an authorisation lapsed unused, or its verified records aged out."""

    event_type: ClassVar[str] = "DegreeAuthorizationExpired"
    stream: ClassVar[Stream] = DEGREE_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "candidate_id": ex.CANDIDATE_ID,
                    "authorization_id": ex.AUTHORIZATION_ID,
                    "degree_refs": [],
                }
            ]
        }
    )

    candidate_id: CandidateId = Field(description="the stream id")
    authorization_id: UUID = Field(description="the authorisation that expired")
    degree_refs: list[UUID] = Field(
        default_factory=list, description="verified records that may no longer be relied on"
    )


class CertificateVerified(ContractEvent):
    """证书核验通过: the issuing body confirmed the candidate's CET/PETS/NCRE/NIT certificate."""

    event_type: ClassVar[str] = "CertificateVerified"
    stream: ClassVar[Stream] = CERTIFICATE_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "check_id": ex.CHECK_ID,
                    "candidate_id": ex.CANDIDATE_ID,
                    "exam": "cet4",
                    "level": None,
                    "subject": None,
                    "score": 480,
                    "exam_session": "2019-12",
                }
            ]
        }
    )

    check_id: UUID = Field(description="this check; the stream id; cite it from an application")
    candidate_id: CandidateId = Field(description="the certificate's holder")
    exam: CertificateExam = Field(description="the examination that issued the certificate")
    level: int | None = Field(default=None, ge=1, le=5, description="级别 (PETS, NCRE)")
    subject: str | None = Field(
        default=None, max_length=100, description="科目 or module, e.g. 二级C语言程序设计"
    )
    score: int | None = Field(default=None, ge=0, le=710, description="总分 (CET score reports)")
    exam_session: str | None = Field(
        default=None, pattern=r"^\d{4}-\d{2}$", description="考试年月 the certificate was earned"
    )


class CertificateVerificationFailed(ContractEvent):
    """证书核验未通过: the issuing body did not confirm the certificate; the reason says why."""

    event_type: ClassVar[str] = "CertificateVerificationFailed"
    stream: ClassVar[Stream] = CERTIFICATE_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "check_id": ex.CHECK_ID,
                    "candidate_id": ex.CANDIDATE_ID,
                    "exam": "ncre",
                    "reason_code": "not_found",
                    "reason": "未查询到该证书，请核对证书编号",
                }
            ]
        }
    )

    check_id: UUID = Field(description="the failed check; the stream id")
    candidate_id: CandidateId = Field(description="the certificate's holder")
    exam: CertificateExam = Field(description="the examination that issued the certificate")
    reason_code: CertificateFailureReason = Field(description="stable code of the failure")
    reason: ReasonText = Field(description="message for the candidate (Chinese)")


CONTRACT = ServiceContract(
    service="credential-verify",
    package="credential",
    streams=(DEGREE_STREAM, CERTIFICATE_STREAM),
    events=(
        DegreeAuthorizationRequested,
        DegreesVerified,
        DegreeAuthorizationExpired,
        CertificateVerified,
        CertificateVerificationFailed,
    ),
)
