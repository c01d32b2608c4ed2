"""Who may see and act on a case (the whole matrix), the reason templates and the error table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from contracts.base import ReviewStage
from review_service.domain import errors, templates
from review_service.domain.access import (
    OPS,
    REVIEWER,
    SENIOR_REVIEWER,
    Reviewer,
    may_act,
    may_act_at,
    may_view,
)

pytestmark = pytest.mark.unit

OWN, OTHER = "140105", "140106"
P, S = ReviewStage.CONFIRMATION_POINT, ReviewStage.PROVINCIAL


@dataclass(frozen=True)
class Scope:
    confirmation_point_id: str
    acting_stage: ReviewStage | None


def staff(*roles: str) -> Reviewer:
    return Reviewer(uuid.uuid4(), frozenset(roles), frozenset({OWN}))


# (roles, case point, acting stage) -> (may view, may act)
MATRIX: list[tuple[tuple[str, ...], str, ReviewStage | None, bool, bool]] = [
    ((REVIEWER,), OWN, P, True, True),
    ((REVIEWER,), OWN, S, True, False),
    ((REVIEWER,), OWN, None, True, False),
    ((REVIEWER,), OTHER, P, False, False),
    ((REVIEWER,), OTHER, S, False, False),
    ((REVIEWER,), OTHER, None, False, False),
    ((SENIOR_REVIEWER,), OWN, P, True, False),
    ((SENIOR_REVIEWER,), OWN, S, True, True),
    ((SENIOR_REVIEWER,), OTHER, P, True, False),
    ((SENIOR_REVIEWER,), OTHER, S, True, True),
    ((SENIOR_REVIEWER,), OTHER, None, True, False),
    ((OPS,), OWN, P, False, False),
    ((OPS,), OWN, S, False, False),
    ((OPS,), OTHER, None, False, False),
    ((), OWN, P, False, False),  # a candidate or an unknown account: no review role
    (("candidate",), OWN, S, False, False),
    ((REVIEWER, SENIOR_REVIEWER), OWN, P, True, True),
    ((REVIEWER, SENIOR_REVIEWER), OTHER, P, True, False),
    ((REVIEWER, SENIOR_REVIEWER), OTHER, S, True, True),
    ((REVIEWER, OPS), OTHER, P, False, False),
]


@pytest.mark.parametrize(("roles", "point", "stage", "view", "act"), MATRIX)
def test_access_matrix(
    roles: tuple[str, ...], point: str, stage: ReviewStage | None, view: bool, act: bool
) -> None:
    reviewer = staff(*roles)
    scope = Scope(point, stage)
    assert may_view(reviewer, scope) is view
    assert may_act(reviewer, scope) is act
    if stage is not None:
        assert may_act_at(reviewer, stage, point) is act
    assert not act or view  # acting implies seeing


def test_a_point_reviewer_without_points_sees_nothing() -> None:
    reviewer = Reviewer(uuid.uuid4(), frozenset({REVIEWER}), frozenset())
    assert not may_view(reviewer, Scope(OWN, P))
    assert not reviewer.is_senior and reviewer.reviews


def test_templates_have_stable_unique_ids_and_chinese_text() -> None:
    ids = [t.template_id for t in templates.ALL_TEMPLATES]
    assert len(ids) == len(set(ids))
    assert templates.template("R01") is not None
    assert templates.template("R01").text == "证书照片不清晰，请重新上传"  # type: ignore[union-attr]
    assert templates.template("nope") is None
    assert {t.kind for t in templates.templates_for("return")} == {templates.ReasonKind.RETURN}
    assert templates.templates_for(templates.ReasonKind.DENIAL) == templates.DENIAL_REASONS
    texts = {t.text for t in templates.ALL_TEMPLATES}
    assert {"成绩单未加盖学校公章", "所选课程与证书不符"} <= texts
    assert any("学信网" in t for t in texts)
    assert all(0 < len(t) <= 500 for t in texts)


EXPECTED = {
    "review.case_not_found": 404,
    "review.forbidden": 403,
    "review.already_claimed": 409,
    "review.claim_required": 409,
    "review.claim_expired": 409,
    "review.not_claimable": 409,
    "review.stale_submission": 409,
    "review.already_decided": 409,
    "review.decision_incomplete": 422,
    "review.reason_required": 422,
    "review.reason_too_long": 422,
    "review.invalid_input": 422,
}


def test_error_codes_statuses_and_messages() -> None:
    assert {cls.code: cls.status for cls in errors.ALL_ERRORS} == EXPECTED
    for cls in errors.ALL_ERRORS:
        assert cls.code.startswith("review.")
        assert any("\u4e00" <= ch <= "\u9fff" for ch in cls.default_message)


def test_already_claimed_names_the_holder_and_the_time_in_beijing() -> None:
    holder = uuid.UUID("00000000-0000-0000-0000-000000000007")
    error = errors.AlreadyClaimed(holder, datetime(2025, 3, 5, 6, 30, tzinfo=UTC))
    assert error.status == 409 and error.holder_id == holder
    assert error.message == "该申请正由 审核员 r-000000 办理（至 14:30）"
    named = error.relabelled("小店区确认点 审核员一")
    assert named.message == "该申请正由 小店区确认点 审核员一 办理（至 14:30）"
    assert named.code == "review.already_claimed"
    assert "claimed by" in named.detail_en
