"""Events published by the identity service: candidate accounts and staff accounts."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import ConfigDict, Field

from contracts import _examples as ex
from contracts.base import (
    AdmissionTicketNumber,
    CandidateId,
    ConfirmationPointId,
    ContractEvent,
    CourseCode,
    IdNumberFingerprint,
    MajorCode,
    MaskedIdNumber,
    MaskedMobile,
    ServiceContract,
    StaffId,
    Stream,
)

CANDIDATE_STREAM = Stream(
    service="identity",
    stream_type="identity.candidate",
    topic="identity.candidate.v1",
    id_field="candidate_id",
    description="考生账号: one stream per registered candidate",
)
STAFF_STREAM = Stream(
    service="identity",
    stream_type="identity.staff",
    topic="identity.staff.v1",
    id_field="staff_id",
    description="工作人员账号: one stream per staff account",
)
CANDIDATE_TOPIC = CANDIDATE_STREAM.topic
STAFF_TOPIC = STAFF_STREAM.topic


class Gender(StrEnum):
    """性别 as recorded on the enrolment roster."""

    MALE = "male"
    FEMALE = "female"


class CandidateProfileField(StrEnum):
    """A field of the personal centre (个人中心) that a candidate may change."""

    NAME = "name"
    MOBILE = "mobile"
    EMAIL = "email"
    OCCUPATION = "occupation"
    EDUCATION = "education"
    POLITICAL_STATUS = "political_status"
    REGISTRATION_DISTRICT = "registration_district"


class StaffRole(StrEnum):
    """Staff roles: 初审 reviewer, 复审 senior reviewer, ops."""

    REVIEWER = "reviewer"
    SENIOR_REVIEWER = "senior_reviewer"
    OPS = "ops"


class CandidateRegistered(ContractEvent):
    """考生注册: an enrolled candidate (在籍考生) matched the roster and created an account."""

    event_type: ClassVar[str] = "CandidateRegistered"
    stream: ClassVar[Stream] = CANDIDATE_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "candidate_id": ex.CANDIDATE_ID,
                    "admission_ticket_number": "010118100001",
                    "name": "张三",
                    "gender": "male",
                    "id_number_masked": ex.ID_NUMBER_MASKED,
                    "id_number_fingerprint": ex.ID_NUMBER_FINGERPRINT,
                    "enrolled_major_code": "580401",
                    "registration_district": "140105",
                    "passed_course_codes": ["00012", "03706"],
                }
            ]
        }
    )

    candidate_id: CandidateId = Field(description="the candidate's account id; the stream id")
    admission_ticket_number: AdmissionTicketNumber
    name: str = Field(min_length=1, max_length=100, description="姓名 as on the roster")
    gender: Gender = Field(description="性别")
    id_number_masked: MaskedIdNumber
    id_number_fingerprint: IdNumberFingerprint
    enrolled_major_code: MajorCode | None = Field(
        default=None, description="the major the candidate is enrolled in, if the roster says"
    )
    registration_district: str | None = Field(
        default=None,
        pattern=r"^\d{6}$",
        description="报名区县: division code of the district the candidate registered in",
    )
    passed_course_codes: list[CourseCode] = Field(
        default_factory=list,
        max_length=200,
        description="已合格课程: the course codes the roster lists as passed at registration",
    )


class CandidatePassedCoursesRecorded(ContractEvent):
    """已合格课程更新: a roster import changed the courses a registered candidate has passed."""

    event_type: ClassVar[str] = "CandidatePassedCoursesRecorded"
    stream: ClassVar[Stream] = CANDIDATE_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "candidate_id": ex.CANDIDATE_ID,
                    "admission_ticket_number": "010118100001",
                    "passed_course_codes": ["00012", "03706", "04729"],
                }
            ]
        }
    )

    candidate_id: CandidateId = Field(description="the stream id")
    admission_ticket_number: AdmissionTicketNumber
    passed_course_codes: list[CourseCode] = Field(
        max_length=200,
        description="已合格课程: every course code the roster now lists as passed (the whole set)",
    )


class CandidateProfileUpdated(ContractEvent):
    """个人信息修改: a candidate changed fields of the personal centre; values only where needed."""

    event_type: ClassVar[str] = "CandidateProfileUpdated"
    stream: ClassVar[Stream] = CANDIDATE_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "candidate_id": ex.CANDIDATE_ID,
                    "changed_fields": ["mobile", "occupation"],
                    "mobile_masked": "138****5678",
                }
            ]
        }
    )

    candidate_id: CandidateId = Field(description="the stream id")
    changed_fields: list[CandidateProfileField] = Field(
        min_length=1, description="which fields changed; read the new values from identity"
    )
    name: str | None = Field(
        default=None, min_length=1, max_length=100, description="the new name, when it changed"
    )
    mobile_masked: MaskedMobile | None = Field(
        default=None, description="the new mobile number masked, when it changed"
    )
    registration_district: str | None = Field(
        default=None, pattern=r"^\d{6}$", description="the new 报名区县, when it changed"
    )


class StaffAccountCreated(ContractEvent):
    """工作人员账号开通: ops created a reviewer, senior reviewer or ops account."""

    event_type: ClassVar[str] = "StaffAccountCreated"
    stream: ClassVar[Stream] = STAFF_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "staff_id": ex.STAFF_ID,
                    "username": "xiaodian.reviewer1",
                    "display_name": "小店区确认点 审核员一",
                    "roles": ["reviewer"],
                    "confirmation_point_ids": [ex.CONFIRMATION_POINT],
                }
            ]
        }
    )

    staff_id: StaffId = Field(description="the staff account id; the stream id")
    username: str = Field(
        pattern=r"^[a-z0-9][a-z0-9._-]{2,63}$", description="login name, not a personal number"
    )
    display_name: str = Field(
        min_length=1, max_length=100, description="name shown in audit trails"
    )
    roles: list[StaffRole] = Field(min_length=1, description="roles granted")
    confirmation_point_ids: list[ConfirmationPointId] = Field(
        default_factory=list,
        description="免考确认点 a reviewer is bound to; empty for province/ops",
    )


CONTRACT = ServiceContract(
    service="identity",
    package="identity",
    streams=(CANDIDATE_STREAM, STAFF_STREAM),
    events=(
        CandidateRegistered,
        CandidateProfileUpdated,
        CandidatePassedCoursesRecorded,
        StaffAccountCreated,
    ),
)
