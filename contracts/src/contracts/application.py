"""Events published by the application service: the ExemptionApplication aggregate (免考申请)."""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar
from uuid import UUID

from pydantic import AwareDatetime, ConfigDict, Field

from contracts import _examples as ex
from contracts.base import (
    ApplicationId,
    CandidateId,
    CaseNumber,
    CatalogueVersion,
    CertificateKind,
    ConfirmationPointId,
    ContractEvent,
    ContractModel,
    CourseCode,
    CourseDecision,
    MajorCode,
    PhotoId,
    ReasonText,
    ReviewStage,
    RuleId,
    ServiceContract,
    Stream,
    StudyPlan,
    WindowId,
)
from contracts.credential import DegreeLevel

EXEMPTION_STREAM = Stream(
    service="application",
    stream_type="application.exemption",
    topic="application.exemption.v1",
    id_field="application_id",
    description="免考申请: one stream per ExemptionApplication",
)
EXEMPTION_TOPIC = EXEMPTION_STREAM.topic
WINDOW_STREAM = Stream(
    service="application",
    stream_type="application.window",
    topic="application.window.v1",
    id_field="window_id",
    description="申请时段: one stream per application window, opened and closed by ops",
)
WINDOW_TOPIC = WINDOW_STREAM.topic

MAX_CERTIFICATES = 4
MAX_MAJORS = 2


class ClaimedCourse(ContractModel):
    """申请免考课程: one course a certificate is used to exempt."""

    course_code: CourseCode
    course_name: str = Field(min_length=1, max_length=200, description="课程名称 in the catalogue")
    major_code: MajorCode = Field(description="the major the course is claimed under")
    source_course_name: str | None = Field(
        default=None,
        max_length=200,
        description="degree route: the transcript course ticked (√) for it",
    )


class DegreeSummary(ContractModel):
    """The verified degree a degree certificate rests on, as the candidate submitted it."""

    degree_ref: UUID = Field(description="the verified record in credential-verify")
    institution: str = Field(min_length=1, max_length=200, description="院校名称")
    major_name: str = Field(min_length=1, max_length=200, description="专业名称")
    level: DegreeLevel = Field(description="层次")
    graduation_year: int = Field(ge=1950, le=2100, description="毕业年份")
    certificate_number: str | None = Field(
        default=None, pattern=r"^\d{18}$", description="证书编号, if CHSI released it"
    )
    holder_matches_candidate: bool = Field(description="本人学历: name and ID number match")


class ApplicationCertificate(ContractModel):
    """One certificate of an application, with its route, evidence, photos and courses."""

    certificate_id: UUID = Field(description="id of the certificate within the application")
    kind: CertificateKind = Field(description="证书类型")
    route_id: RuleId = Field(description="the exemption route of the rule table it is claimed by")
    degree: DegreeSummary | None = Field(
        default=None, description="degree certificates: the CHSI-verified degree it rests on"
    )
    certificate_check_ref: UUID | None = Field(
        default=None, description="other certificates: the check id from credential-verify"
    )
    photo_ids: list[PhotoId] = Field(min_length=1, description="证书照片 in the media service")
    courses: list[ClaimedCourse] = Field(min_length=1, description="the courses it exempts")


_DEGREE_CERTIFICATE_EXAMPLE: dict[str, Any] = {
    "certificate_id": ex.DEGREE_CERTIFICATE_ID,
    "kind": "degree",
    "route_id": "DEGREE-SAME-NAME",
    "degree": {
        "degree_ref": ex.DEGREE_REF,
        "institution": "山西大学",
        "major_name": "法律事务",
        "level": "junior_college",
        "graduation_year": 2021,
        "certificate_number": "101082021050001234",
        "holder_matches_candidate": True,
    },
    "certificate_check_ref": None,
    "photo_ids": [ex.PHOTO_ID],
    "courses": [
        {
            "course_code": "00242",
            "course_name": "民法学",
            "major_code": "580401",
            "source_course_name": "民法学",
        }
    ],
}
_CET_CERTIFICATE_EXAMPLE: dict[str, Any] = {
    "certificate_id": ex.CET_CERTIFICATE_ID,
    "kind": "cet4_or_above",
    "route_id": "CET4",
    "degree": None,
    "certificate_check_ref": ex.CHECK_ID,
    "photo_ids": [ex.SECOND_PHOTO_ID],
    "courses": [{"course_code": "00012", "course_name": "英语(一)", "major_code": "580401"}],
}
_SNAPSHOT_EXAMPLE: dict[str, Any] = {
    "application_id": ex.APPLICATION_ID,
    "case_number": ex.CASE_NUMBER,
    "candidate_id": ex.CANDIDATE_ID,
    "window_id": ex.WINDOW_ID,
    "confirmation_point_id": ex.CONFIRMATION_POINT,
    "plan": "old",
    "major_codes": ["580401"],
    "catalogue_version": ex.CATALOGUE_VERSION,
    "certificates": [_DEGREE_CERTIFICATE_EXAMPLE, _CET_CERTIFICATE_EXAMPLE],
    "course_codes": ["00242", "00012"],
    "photo_ids": [ex.PHOTO_ID, ex.SECOND_PHOTO_ID],
    "declaration_accepted": True,
}


class ApplicationDrafted(ContractEvent):
    """免考申请草稿: a candidate chose confirmation point, plan and majors (wizard step 1)."""

    event_type: ClassVar[str] = "ApplicationDrafted"
    stream: ClassVar[Stream] = EXEMPTION_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "application_id": ex.APPLICATION_ID,
                    "candidate_id": ex.CANDIDATE_ID,
                    "window_id": ex.WINDOW_ID,
                    "confirmation_point_id": ex.CONFIRMATION_POINT,
                    "plan": "old",
                    "major_codes": ["580401"],
                    "catalogue_version": ex.CATALOGUE_VERSION,
                }
            ]
        }
    )

    application_id: ApplicationId = Field(description="the stream id")
    candidate_id: CandidateId
    window_id: WindowId = Field(description="the application window (申请时段) it belongs to")
    confirmation_point_id: ConfirmationPointId
    plan: StudyPlan = Field(description="新旧计划")
    major_codes: list[MajorCode] = Field(
        min_length=1, max_length=MAX_MAJORS, description="专业: at most two majors"
    )
    catalogue_version: CatalogueVersion


class CertificateAdded(ContractEvent):
    """添加证书: a certificate, its photos and the courses it exempts were added (step 2)."""

    event_type: ClassVar[str] = "CertificateAdded"
    stream: ClassVar[Stream] = EXEMPTION_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"application_id": ex.APPLICATION_ID, "certificate": _DEGREE_CERTIFICATE_EXAMPLE}
            ]
        }
    )

    application_id: ApplicationId = Field(description="the stream id")
    certificate: ApplicationCertificate = Field(description="the certificate as added")


class CertificateRemoved(ContractEvent):
    """删除证书: a certificate and its courses were removed from a draft (step 3)."""

    event_type: ClassVar[str] = "CertificateRemoved"
    stream: ClassVar[Stream] = EXEMPTION_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"application_id": ex.APPLICATION_ID, "certificate_id": ex.CET_CERTIFICATE_ID}
            ]
        }
    )

    application_id: ApplicationId = Field(description="the stream id")
    certificate_id: UUID = Field(description="the certificate removed")


class _SubmissionSnapshot(ContractEvent):
    """What a submission freezes: the whole application as the reviewers will judge it."""

    application_id: ApplicationId = Field(description="the stream id")
    case_number: CaseNumber
    candidate_id: CandidateId
    window_id: WindowId
    confirmation_point_id: ConfirmationPointId
    plan: StudyPlan = Field(description="新旧计划")
    major_codes: list[MajorCode] = Field(
        min_length=1, max_length=MAX_MAJORS, description="专业: at most two majors"
    )
    catalogue_version: CatalogueVersion = Field(description="catalogue the rules were applied from")
    certificates: list[ApplicationCertificate] = Field(
        min_length=1, max_length=MAX_CERTIFICATES, description="at most four certificates"
    )
    course_codes: list[CourseCode] = Field(
        min_length=1, description="every claimed course, once, in the order claimed"
    )
    photo_ids: list[PhotoId] = Field(
        min_length=1, description="every photo the application cites (media pins them)"
    )
    declaration_accepted: bool = Field(description="承诺书: the candidate ticked the declaration")
    submission_number: int = Field(ge=1, description="1 for the first submission, then 2, 3…")


class ApplicationSubmitted(_SubmissionSnapshot):
    """提交免考申请: the candidate confirmed and submitted; the snapshot goes to review."""

    event_type: ClassVar[str] = "ApplicationSubmitted"
    stream: ClassVar[Stream] = EXEMPTION_STREAM
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_SNAPSHOT_EXAMPLE, "submission_number": 1}]}
    )


class ApplicationResubmitted(_SubmissionSnapshot):
    """重新申请: a returned application was fixed and submitted again, as a new snapshot."""

    event_type: ClassVar[str] = "ApplicationResubmitted"
    stream: ClassVar[Stream] = EXEMPTION_STREAM
    model_config = ConfigDict(
        json_schema_extra={"examples": [{**_SNAPSHOT_EXAMPLE, "submission_number": 2}]}
    )


class ApplicationWithdrawn(ContractEvent):
    """撤回申请: the candidate withdrew the application; review stops working on it."""

    event_type: ClassVar[str] = "ApplicationWithdrawn"
    stream: ClassVar[Stream] = EXEMPTION_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "application_id": ex.APPLICATION_ID,
                    "candidate_id": ex.CANDIDATE_ID,
                    "case_number": ex.CASE_NUMBER,
                    "reason": "证书照片有误，重新准备后再申请",
                }
            ]
        }
    )

    application_id: ApplicationId = Field(description="the stream id")
    candidate_id: CandidateId
    case_number: CaseNumber | None = Field(
        default=None, description="set once the application had been submitted"
    )
    reason: ReasonText | None = Field(default=None, description="the candidate's reason, if given")


class ApplicationReturnedToCandidate(ContractEvent):
    """被退回: review returned the application; the candidate may fix it and resubmit."""

    event_type: ClassVar[str] = "ApplicationReturnedToCandidate"
    stream: ClassVar[Stream] = EXEMPTION_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "application_id": ex.APPLICATION_ID,
                    "case_number": ex.CASE_NUMBER,
                    "candidate_id": ex.CANDIDATE_ID,
                    "stage": "confirmation_point",
                    "reason": "学历证书照片不清晰，请重新上传",
                    "submission_number": 1,
                }
            ]
        }
    )

    application_id: ApplicationId = Field(description="the stream id")
    case_number: CaseNumber
    candidate_id: CandidateId
    stage: ReviewStage = Field(description="the review stage that returned it")
    reason: ReasonText = Field(description="退回原因, shown to the candidate")
    submission_number: int = Field(ge=1, description="the submission that was returned")


class ApplicationDecided(ContractEvent):
    """免考结果: the provincial decision per course is recorded (免考, no score, where granted)."""

    event_type: ClassVar[str] = "ApplicationDecided"
    stream: ClassVar[Stream] = EXEMPTION_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "application_id": ex.APPLICATION_ID,
                    "case_number": ex.CASE_NUMBER,
                    "candidate_id": ex.CANDIDATE_ID,
                    "decisions": [
                        {"course_code": "00242", "major_code": "580401", "outcome": "granted"},
                        {
                            "course_code": "00012",
                            "major_code": "580401",
                            "outcome": "denied",
                            "reason": "证书取得时间不在有效期内",
                        },
                    ],
                    "objection_deadline": "2025-04-18",
                }
            ]
        }
    )

    application_id: ApplicationId = Field(description="the stream id")
    case_number: CaseNumber
    candidate_id: CandidateId
    decisions: list[CourseDecision] = Field(min_length=1, description="one per claimed course")
    objection_deadline: date | None = Field(
        default=None,
        description="核查: last day to object to the result, where the province has one",
    )


_WINDOW_EXAMPLE: dict[str, Any] = {
    "window_id": ex.WINDOW_ID,
    "name": "2025年上半年免考申请",
    "opens_at": "2025-03-01T08:00:00+08:00",
    "applications_close_at": "2025-03-10T17:00:00+08:00",
    "point_review_close_at": "2025-03-20T17:00:00+08:00",
    "province_review_close_at": "2025-04-05T17:00:00+08:00",
    "results_published_at": "2025-04-10T09:00:00+08:00",
}


class ApplicationWindowOpened(ContractEvent):
    """申请时段开放: ops opened a window with its deadlines (apply, 初审, 复审, results)."""

    event_type: ClassVar[str] = "ApplicationWindowOpened"
    stream: ClassVar[Stream] = WINDOW_STREAM
    model_config = ConfigDict(json_schema_extra={"examples": [_WINDOW_EXAMPLE]})

    window_id: WindowId = Field(description="the stream id")
    name: str = Field(min_length=1, max_length=100, description="申请时段名称")
    opens_at: AwareDatetime = Field(description="candidates may apply from")
    applications_close_at: AwareDatetime = Field(description="candidates apply until")
    point_review_close_at: AwareDatetime = Field(description="确认点初审 until")
    province_review_close_at: AwareDatetime = Field(description="省级复审 until")
    results_published_at: AwareDatetime = Field(description="results are published at")


class ApplicationWindowClosed(ContractEvent):
    """申请时段关闭: ops closed a window early; no application or resubmission is taken."""

    event_type: ClassVar[str] = "ApplicationWindowClosed"
    stream: ClassVar[Stream] = WINDOW_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"window_id": ex.WINDOW_ID, "reason": "政策调整，本次申请提前结束"}]
        }
    )

    window_id: WindowId = Field(description="the stream id")
    reason: ReasonText = Field(description="why it was closed, shown to candidates")


CONTRACT = ServiceContract(
    service="application",
    package="application",
    streams=(EXEMPTION_STREAM, WINDOW_STREAM),
    events=(
        ApplicationDrafted,
        CertificateAdded,
        CertificateRemoved,
        ApplicationSubmitted,
        ApplicationResubmitted,
        ApplicationWithdrawn,
        ApplicationReturnedToCandidate,
        ApplicationDecided,
        ApplicationWindowOpened,
        ApplicationWindowClosed,
    ),
)
