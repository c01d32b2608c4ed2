"""Who may see and act on a review case.

- "reviewer" (确认点审核员): sees the cases of their confirmation points, acts on their 初审;
- "senior_reviewer" (省级复审员): sees every case of the province, acts on 复审;
- "ops": runs the platform, no case access; candidates are never reviewers.

A case is described by the two facts access needs (`CaseScope`), so this module does not depend
on the case aggregate and the service layer can filter a queue with the same rules.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Protocol

from contracts.base import ReviewStage

REVIEWER = "reviewer"
SENIOR_REVIEWER = "senior_reviewer"
OPS = "ops"
REVIEW_ROLES = frozenset({REVIEWER, SENIOR_REVIEWER})
KNOWN_ROLES = frozenset({REVIEWER, SENIOR_REVIEWER, OPS})


@dataclass(frozen=True, slots=True)
class Reviewer:
    """A staff member as the review domain sees them."""

    staff_id: uuid.UUID
    roles: frozenset[str] = field(default_factory=frozenset)
    points: frozenset[str] = field(default_factory=frozenset)  # confirmation point ids

    @property
    def is_point_reviewer(self) -> bool:
        """Bound to confirmation points."""
        return REVIEWER in self.roles

    @property
    def is_senior(self) -> bool:
        """A provincial (复审) reviewer."""
        return SENIOR_REVIEWER in self.roles

    @property
    def reviews(self) -> bool:
        """Has any review role at all (ops and unknown roles do not)."""
        return bool(self.roles & REVIEW_ROLES)


class CaseScope(Protocol):
    """What access needs of a case: its point and the stage that acts on it now (None when no
    stage does: returned, decided, withdrawn)."""

    @property
    def confirmation_point_id(self) -> str: ...

    @property
    def acting_stage(self) -> ReviewStage | None: ...


def may_view(reviewer: Reviewer, case: CaseScope) -> bool:
    """Seniors see every case; point reviewers the cases of their points; nobody else any."""
    if reviewer.is_senior:
        return True
    return reviewer.is_point_reviewer and case.confirmation_point_id in reviewer.points


def may_act_at(reviewer: Reviewer, stage: ReviewStage, confirmation_point_id: str) -> bool:
    """Point reviewers act on 初审 of their points, seniors on 复审."""
    if stage is ReviewStage.CONFIRMATION_POINT:
        return reviewer.is_point_reviewer and confirmation_point_id in reviewer.points
    return reviewer.is_senior


def may_act(reviewer: Reviewer, case: CaseScope) -> bool:
    """May claim, decide or return the case in its current stage."""
    stage = case.acting_stage
    if stage is None:
        return False
    return may_act_at(reviewer, stage, case.confirmation_point_id)
