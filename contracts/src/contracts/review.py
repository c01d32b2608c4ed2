"""Events published by the review service: claims, returns and per-course decisions (审核)."""

from __future__ import annotations

from datetime import date
from typing import ClassVar

from pydantic import ConfigDict, Field

from contracts import _examples as ex
from contracts.base import (
    ApplicationId,
    CaseNumber,
    ConfirmationPointId,
    ContractEvent,
    ContractModel,
    CourseCode,
    CourseDecision,
    ReasonText,
    ReviewStage,
    ServiceContract,
    StaffId,
    Stream,
)

DECISION_STREAM = Stream(
    service="review",
    stream_type="review.decision",
    topic="review.decision.v1",
    id_field="application_id",
    description="审核: one stream per reviewed application, across its submissions and stages",
)
DECISION_TOPIC = DECISION_STREAM.topic


class CourseNote(ContractModel):
    """A reviewer's note on one course of a returned application."""

    course_code: CourseCode
    note: ReasonText = Field(description="what to fix about the course")


class ReviewClaimed(ContractEvent):
    """领取审核: a reviewer took an application from the queue of their stage."""

    event_type: ClassVar[str] = "ReviewClaimed"
    stream: ClassVar[Stream] = DECISION_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "application_id": ex.APPLICATION_ID,
                    "case_number": ex.CASE_NUMBER,
                    "submission_number": 1,
                    "stage": "confirmation_point",
                    "confirmation_point_id": ex.CONFIRMATION_POINT,
                    "reviewer_id": ex.STAFF_ID,
                }
            ]
        }
    )

    application_id: ApplicationId = Field(description="the stream id")
    case_number: CaseNumber
    submission_number: int = Field(ge=1, description="the submission under review")
    stage: ReviewStage = Field(description="初审 (confirmation point) or 复审 (provincial)")
    confirmation_point_id: ConfirmationPointId
    reviewer_id: StaffId = Field(description="the reviewer who acted")


class ReviewReleased(ContractEvent):
    """释放审核: the reviewer gave the case back to the queue, or their claim lapsed."""

    event_type: ClassVar[str] = "ReviewReleased"
    stream: ClassVar[Stream] = DECISION_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "application_id": ex.APPLICATION_ID,
                    "case_number": ex.CASE_NUMBER,
                    "submission_number": 1,
                    "stage": "confirmation_point",
                    "reviewer_id": ex.STAFF_ID,
                    "lapsed": False,
                }
            ]
        }
    )

    application_id: ApplicationId = Field(description="the stream id")
    case_number: CaseNumber
    submission_number: int = Field(ge=1, description="the submission under review")
    stage: ReviewStage = Field(description="初审 (confirmation point) or 复审 (provincial)")
    reviewer_id: StaffId = Field(description="whose claim ended")
    lapsed: bool = Field(description="true when the claim expired rather than being released")


class InitialReviewCompleted(ContractEvent):
    """初审完成: the point checked the originals; its per-course opinion goes to 复审."""

    event_type: ClassVar[str] = "InitialReviewCompleted"
    stream: ClassVar[Stream] = DECISION_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "application_id": ex.APPLICATION_ID,
                    "case_number": ex.CASE_NUMBER,
                    "submission_number": 1,
                    "confirmation_point_id": ex.CONFIRMATION_POINT,
                    "reviewer_id": ex.STAFF_ID,
                    "decisions": [
                        {"course_code": "00242", "major_code": "580401", "outcome": "granted"}
                    ],
                    "note": "原件已核验",
                }
            ]
        }
    )

    application_id: ApplicationId = Field(description="the stream id")
    case_number: CaseNumber
    submission_number: int = Field(ge=1, description="the submission reviewed")
    confirmation_point_id: ConfirmationPointId
    reviewer_id: StaffId = Field(description="the point reviewer who acted")
    decisions: list[CourseDecision] = Field(
        min_length=1, description="the point's opinion per claimed course"
    )
    note: ReasonText | None = Field(default=None, description="a note for the province")


class ApplicationReturned(ContractEvent):
    """退回: a reviewer returned the application to the candidate with a reason."""

    event_type: ClassVar[str] = "ApplicationReturned"
    stream: ClassVar[Stream] = DECISION_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "application_id": ex.APPLICATION_ID,
                    "case_number": ex.CASE_NUMBER,
                    "submission_number": 1,
                    "stage": "confirmation_point",
                    "reviewer_id": ex.STAFF_ID,
                    "reason": "学历证书照片不清晰，请重新上传",
                    "course_notes": [{"course_code": "00242", "note": "成绩单未勾选对应课程"}],
                }
            ]
        }
    )

    application_id: ApplicationId = Field(description="the stream id")
    case_number: CaseNumber
    submission_number: int = Field(ge=1, description="the submission being returned")
    stage: ReviewStage = Field(description="初审 (confirmation point) or 复审 (provincial)")
    reviewer_id: StaffId = Field(description="the reviewer who acted")
    reason: ReasonText = Field(description="退回原因, shown to the candidate")
    course_notes: list[CourseNote] = Field(default_factory=list, description="notes per course")


class ApplicationApproved(ContractEvent):
    """审核完成: a stage decided every claimed course (同意免考 / 不同意); provincial is final."""

    event_type: ClassVar[str] = "ApplicationApproved"
    stream: ClassVar[Stream] = DECISION_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "application_id": ex.APPLICATION_ID,
                    "case_number": ex.CASE_NUMBER,
                    "submission_number": 1,
                    "stage": "provincial",
                    "reviewer_id": ex.SENIOR_STAFF_ID,
                    "decisions": [
                        {"course_code": "00242", "major_code": "580401", "outcome": "granted"},
                        {
                            "course_code": "00012",
                            "major_code": "580401",
                            "outcome": "denied",
                            "reason": "证书取得时间不在有效期内",
                        },
                    ],
                    "final": True,
                    "objection_deadline": "2025-04-18",
                }
            ]
        }
    )

    application_id: ApplicationId = Field(description="the stream id")
    case_number: CaseNumber
    submission_number: int = Field(ge=1, description="the submission decided")
    stage: ReviewStage = Field(description="初审 (confirmation point) or 复审 (provincial)")
    reviewer_id: StaffId = Field(description="the reviewer who acted")
    decisions: list[CourseDecision] = Field(min_length=1, description="one per claimed course")
    final: bool = Field(
        description="true for the provincial decision (复审); false when 初审 passes it upward"
    )
    objection_deadline: date | None = Field(
        default=None, description="核查: last day to object, when final and the province has one"
    )


CONTRACT = ServiceContract(
    service="review",
    package="review",
    streams=(DECISION_STREAM,),
    events=(
        ReviewClaimed,
        ReviewReleased,
        InitialReviewCompleted,
        ApplicationReturned,
        ApplicationApproved,
    ),
)
