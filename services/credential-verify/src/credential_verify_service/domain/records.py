"""学历记录: a qualification record as CHSI returns it, its level, its certificate number and
whether it belongs to the candidate.

Plain frozen dataclasses: the adapter parses the provider's JSON strictly and builds these.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from uuid import UUID

from contracts.credential import AssessmentMethod, DegreeLevel, TranscriptCourse, VerifiedDegree
from credential_verify_service.domain.errors import (
    CertificateNumberMalformed,
    RecordHolderMismatch,
    RecordUnrecognised,
)

# 层次 as CHSI prints it → the contracts' DegreeLevel. A second bachelor's degree (第二学士学位)
# is a bachelor-level qualification.
LEVELS: dict[str, DegreeLevel] = {
    "专科": DegreeLevel.JUNIOR_COLLEGE,
    "本科": DegreeLevel.BACHELOR,
    "第二学士学位": DegreeLevel.BACHELOR,
    "硕士研究生": DegreeLevel.MASTER,
    "博士研究生": DegreeLevel.DOCTOR,
}
ASSESSMENTS: dict[str, AssessmentMethod] = {
    "考试": AssessmentMethod.EXAMINATION,
    "考查": AssessmentMethod.ASSESSMENT,
}
EARLIEST_CERTIFICATE_YEAR = 1950
_CERTIFICATE_NUMBER = re.compile(r"[0-9]{18}")
_MIDDLE_DOTS = re.compile(r"[·•‧∙・⋅]")  # dots typed inside names


@dataclass(frozen=True)
class TranscriptEntry:
    """One transcript course as CHSI returns it."""

    name: str
    code: str | None = None
    credits: float | None = None
    hours: int | None = None
    score: str | None = None
    assessment: str | None = None  # 考试 | 考查

    def to_contract(self) -> TranscriptCourse:
        method = ASSESSMENTS.get(self.assessment) if self.assessment is not None else None
        return TranscriptCourse(
            name=self.name,
            code=self.code,
            credits=self.credits,
            hours=self.hours,
            score=self.score,
            assessment=method,
        )


@dataclass(frozen=True)
class QualificationRecord:
    """A qualification record (学历) with its transcript, fields as in docs/providers.md."""

    record_id: str
    name: str
    gender: str
    id_number: str
    birth_date: date
    institution: str
    level: str  # 本科 | 专科 | 硕士研究生 | 博士研究生 | 第二学士学位
    major: str
    duration_years: int
    category: str
    study_form: str
    entry_date: date
    graduation_date: date
    conclusion: str  # 毕业 | 结业 | 肄业
    certificate_number: str | None
    transcript: tuple[TranscriptEntry, ...] = field(default_factory=tuple)

    @property
    def degree_level(self) -> DegreeLevel:
        return degree_level(self.level)

    def to_verified_degree(
        self,
        *,
        degree_ref: UUID,
        candidate_name: str,
        candidate_id_number: str,
        verified_at: datetime,
    ) -> VerifiedDegree:
        """The contracts' VerifiedDegree for this record (holder match recorded, not enforced).

        A certificate number that fails the shape check is left out rather than published.
        """
        number = self.certificate_number
        if number is not None and certificate_number_problem(number) is not None:
            number = None
        return VerifiedDegree(
            degree_ref=degree_ref,
            institution=self.institution,
            major_name=self.major,
            level=self.degree_level,
            study_form=self.study_form,
            category=self.category,
            entry_year=self.entry_date.year,
            graduation_year=self.graduation_date.year,
            conclusion=self.conclusion,
            certificate_number=number,
            holder_matches_candidate=holder_matches(self, candidate_name, candidate_id_number),
            chsi_verified_at=verified_at,
            transcript=[entry.to_contract() for entry in self.transcript],
        )


def degree_level(text: str) -> DegreeLevel:
    """Map CHSI's 层次 text to DegreeLevel; raises RecordUnrecognised for anything else."""
    level = LEVELS.get(normalise_name(text))
    if level is None:
        raise RecordUnrecognised(f"unknown qualification level {text!r}")
    return level


def _year_candidates(number: str) -> tuple[int, int]:
    # docs/providers.md lays the number out as school (5), type (1), year (4), level (2),
    # serial (6), i.e. the year at [6:10]; its own example (101082012050001234, graduated 2012)
    # and the contracts' example put the year at [5:9]. Both readings are accepted.
    return int(number[6:10]), int(number[5:9])


def certificate_number_problem(number: str, *, latest_year: int | None = None) -> str | None:
    """What is wrong with an 18-digit certificate number (None when plausible).

    The year of graduation in it must lie in [1950, latest_year] (latest_year defaults to 2100:
    the domain has no clock).
    """
    if not _CERTIFICATE_NUMBER.fullmatch(number):
        return f"certificate number must be 18 digits, got {len(number)} characters"
    latest = latest_year or 2100
    if not any(EARLIEST_CERTIFICATE_YEAR <= y <= latest for y in _year_candidates(number)):
        return "certificate number holds no plausible year of graduation"
    return None


def parse_certificate_number(text: str, *, latest_year: int | None = None) -> str:
    """Normalise (NFKC, drop spaces) and check; raises CertificateNumberMalformed."""
    number = re.sub(r"\s+", "", unicodedata.normalize("NFKC", text))
    problem = certificate_number_problem(number, latest_year=latest_year)
    if problem is not None:
        raise CertificateNumberMalformed(problem)
    return number


def certificate_year(number: str) -> int:
    """The graduation year encoded in a plausible certificate number."""
    problem = certificate_number_problem(number)
    if problem is not None:
        raise CertificateNumberMalformed(problem)
    latest = 2100
    return next(y for y in _year_candidates(number) if EARLIEST_CERTIFICATE_YEAR <= y <= latest)


def normalise_name(text: str) -> str:
    """Fold full-width characters, drop every space, unify the middle dot of minority names."""
    folded = unicodedata.normalize("NFKC", text)
    return _MIDDLE_DOTS.sub("·", "".join(folded.split()))


def normalise_id_number(text: str) -> str:
    """Fold full-width characters, strip, upper-case (a trailing x becomes X)."""
    return "".join(unicodedata.normalize("NFKC", text).split()).upper()


def holder_mismatches(
    record: QualificationRecord, candidate_name: str, candidate_id_number: str
) -> tuple[str, ...]:
    """The fields ("name", "id_number") in which the record's holder differs from the candidate."""
    fields: list[str] = []
    if normalise_name(record.name) != normalise_name(candidate_name) or not record.name.strip():
        fields.append("name")
    record_id = normalise_id_number(record.id_number)
    if not record_id or record_id != normalise_id_number(candidate_id_number):
        fields.append("id_number")
    return tuple(fields)


def holder_matches(
    record: QualificationRecord, candidate_name: str, candidate_id_number: str
) -> bool:
    """Whether the record is the candidate's own (本人学历): name and ID number both match."""
    return not holder_mismatches(record, candidate_name, candidate_id_number)


def ensure_holder(
    record: QualificationRecord, candidate_name: str, candidate_id_number: str
) -> None:
    """Raise RecordHolderMismatch unless the record is the candidate's own."""
    fields = holder_mismatches(record, candidate_name, candidate_id_number)
    if fields:
        raise RecordHolderMismatch(fields)
