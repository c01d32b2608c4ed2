"""What the application service knows from other services, as the aggregate's rules see it.

The service layer fills these from its projections of identity, credential-verify, media and
review events (never by calling those services); the rules take them as plain values.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime


@dataclass(frozen=True, slots=True)
class CandidateFacts:
    """The applicant: enrolled (在籍) and registered, and their course record.

    `passed_courses` and `exempted_courses` are course codes: a course already passed or already
    exempted (by an earlier decided application) is never claimed again.
    """

    candidate_id: uuid.UUID
    name: str
    registered: bool = True
    enrolled: bool = True
    passed_courses: frozenset[str] = frozenset()
    exempted_courses: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class TranscriptLine:
    """A course on a verified degree's transcript."""

    name: str
    code: str | None
    credits: float | None
    hours: int | None
    score: str | None  # "85", or a grade like "良好" / "合格"
    assessment: str | None  # examination | assessment (contracts.AssessmentMethod), if printed


@dataclass(frozen=True, slots=True)
class VerifiedDegreeFacts:
    """A CHSI-verified degree (DegreesVerified), as recorded for its candidate."""

    degree_ref: uuid.UUID
    candidate_id: uuid.UUID
    level: str  # contracts.DegreeLevel value: junior_college, bachelor, master, doctor
    institution: str
    major_name: str
    category: str  # 学历类别, e.g. 普通高等教育, 高等教育自学考试
    graduation_year: int
    conclusion: str  # 毕业 | 结业 | 肄业
    certificate_number: str | None
    holder_matches_candidate: bool
    verified_at: datetime
    valid_until: date | None
    transcript: tuple[TranscriptLine, ...] = ()

    @property
    def is_zikao(self) -> bool:
        """A self-study examination (自考) graduate: not subject to the half-of-courses cap."""
        return self.category == "高等教育自学考试"


@dataclass(frozen=True, slots=True)
class CertificateCheckFacts:
    """A certificate check's outcome (CertificateVerified / CertificateVerificationFailed)."""

    check_id: uuid.UUID
    candidate_id: uuid.UUID
    exam: str  # contracts.CertificateExam value: cet4, cet6, pets, ncre, nit
    verified: bool
    level: int | None = None
    subject: str | None = None
    score: int | None = None
    exam_session: str | None = None  # YYYY-MM
    reason_code: str | None = None  # when not verified


@dataclass(frozen=True, slots=True)
class PhotoFacts:
    """A certificate photo (PhotoUploaded / PhotoDeleted)."""

    photo_id: uuid.UUID
    owner_id: uuid.UUID
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class Evidence:
    """Everything the rules may consult about one candidate, by reference."""

    degrees: Mapping[uuid.UUID, VerifiedDegreeFacts] = field(default_factory=dict)
    checks: Mapping[uuid.UUID, CertificateCheckFacts] = field(default_factory=dict)
    photos: Mapping[uuid.UUID, PhotoFacts] = field(default_factory=dict)
