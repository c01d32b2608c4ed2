"""The review case's errors: one class per rule, each with a stable `review.*` code.

Every error carries a Chinese `message` for the reviewer, an English `detail_en` for logs and the
HTTP `status` an entrypoint answers with: 404 for a case that is not there *or not visible* (a
reviewer never learns that another point's case exists), 403 for a role that may not act, 409 for
a conflict with the case's state or another reviewer's claim, 422 for input that breaks a rule.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from eventkit.errors import DomainError

# Reviewers read times in Beijing time; a fixed offset, no tz database and no clock.
CHINA_TZ = timezone(timedelta(hours=8), "CST")


def staff_label(staff_id: uuid.UUID) -> str:
    """The short display id of a staff account when no directory name is at hand: r-1a2b3c."""
    return f"r-{staff_id.hex[:6]}"


class ReviewError(DomainError):
    """Base of the review service's domain errors."""

    code = "review.error"
    status = 422
    default_message = "审核操作不符合规定"

    def __init__(self, detail_en: str = "", message: str | None = None) -> None:
        super().__init__(message or self.default_message, detail_en or self.default_message)


# --- visibility and roles -----------------------------------------------------------------------


class CaseNotFound(ReviewError):
    """No such case, or one the reviewer may not see (another point's): the same answer."""

    code = "review.case_not_found"
    status = 404
    default_message = "未找到该申请"


class Forbidden(ReviewError):
    """The reviewer's role may not do this: ops, or a point reviewer at the provincial stage,
    or a senior reviewer at the point stage."""

    code = "review.forbidden"
    status = 403
    default_message = "您没有办理该审核的权限"


# --- claims -------------------------------------------------------------------------------------


class AlreadyClaimed(ReviewError):
    """Another reviewer holds an unexpired claim; the message names them and until when."""

    code = "review.already_claimed"
    status = 409
    default_message = "该申请正由其他审核员办理"

    def __init__(
        self,
        holder_id: uuid.UUID,
        expires_at: datetime,
        holder_label: str | None = None,
    ) -> None:
        self.holder_id = holder_id
        self.expires_at = expires_at
        self.holder_label = holder_label or f"审核员 {staff_label(holder_id)}"
        until = expires_at.astimezone(CHINA_TZ).strftime("%H:%M")
        super().__init__(
            f"claimed by {holder_id} until {expires_at.isoformat()}",
            f"该申请正由 {self.holder_label} 办理（至 {until}）",
        )

    def relabelled(self, holder_label: str) -> AlreadyClaimed:
        """The same error naming the holder as a staff directory does (e.g. "r-0007")."""
        return AlreadyClaimed(self.holder_id, self.expires_at, holder_label)


class ClaimRequired(ReviewError):
    """Deciding, returning or releasing needs the reviewer's own claim on the case."""

    code = "review.claim_required"
    status = 409
    default_message = "请先领取该申请再办理"


class ClaimExpired(ReviewError):
    """The reviewer's claim lapsed; they claim again (if nobody else did) and retry."""

    code = "review.claim_expired"
    status = 409
    default_message = "您对该申请的领取已超时，请重新领取后再办理"


class NotClaimable(ReviewError):
    """The case is not waiting for review (returned to the candidate, awaiting resubmission)."""

    code = "review.not_claimable"
    status = 409
    default_message = "该申请当前不在待审核状态，不能领取"


# --- state --------------------------------------------------------------------------------------


class StaleSubmission(ReviewError):
    """The reviewer looked at another submission: the candidate resubmitted or withdrew since."""

    code = "review.stale_submission"
    status = 409
    default_message = "考生已重新提交该申请，请刷新后按最新内容审核"


class AlreadyDecided(ReviewError):
    """The stage (or the whole case) was already decided or returned, maybe by a colleague."""

    code = "review.already_decided"
    status = 409
    default_message = "该申请在当前阶段已办结，不能重复办理"


# --- input --------------------------------------------------------------------------------------


class DecisionIncomplete(ReviewError):
    """A decision names every claimed course exactly once, under the major it was claimed under,
    and no other course."""

    code = "review.decision_incomplete"
    status = 422
    default_message = "请对申请的每门课程分别给出且只给出一个审核意见"


class ReasonRequired(ReviewError):
    """A denied course (不同意) and a return (退回) carry a reason."""

    code = "review.reason_required"
    status = 422
    default_message = "请填写原因"


class ReasonTooLong(ReviewError):
    """Reasons and notes are at most 500 characters."""

    code = "review.reason_too_long"
    status = 422
    default_message = "原因不能超过500字"


class InvalidInput(ReviewError):
    """A command's input is malformed (a naive time, a non-positive lease, a bad course code)."""

    code = "review.invalid_input"
    status = 422
    default_message = "提交的信息格式不正确"


ALL_ERRORS: tuple[type[ReviewError], ...] = tuple(
    cls
    for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, ReviewError) and cls is not ReviewError
)
