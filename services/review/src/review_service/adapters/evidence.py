"""The evidence a reviewer weighs: CHSI-verified degrees and certificate checks.

An eventkit projection (schema `review_evidence`) of credential-verify's degree and certificate
streams; review never calls credential-verify. A submitted snapshot cites a verified degree by
`degree.degree_ref` and a certificate check by `certificate_check_ref`; `evidence_for` joins the
current snapshot of a case with what this projection learned, course by course.

Redelivery and ordering: the runner's inbox drops exact duplicates, and every row remembers the
stream version that last wrote it, so a replayed or stale event never overwrites a newer fact
(a re-delivered DegreesVerified does not revive a degree its expiry withdrew).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel

from contracts.application import ApplicationCertificate, ClaimedCourse
from contracts.base import CertificateKind
from contracts.credential import (
    CERTIFICATE_STREAM,
    DEGREE_STREAM,
    CertificateVerificationFailed,
    CertificateVerified,
    DegreeAuthorizationExpired,
    DegreesVerified,
    TranscriptCourse,
    VerifiedDegree,
)
from eventkit.db import Conn
from eventkit.envelope import EventEnvelope
from review_service.domain.case import ReviewCase

EVIDENCE_SCHEMA = "review_evidence"

_DDL = """
CREATE TABLE IF NOT EXISTS degrees (
    degree_ref     uuid PRIMARY KEY,
    candidate_id   uuid NOT NULL,
    degree         jsonb NOT NULL,
    valid_until    date,
    withdrawn      boolean NOT NULL DEFAULT false,
    stream_version integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS degrees_candidate ON degrees (candidate_id);
CREATE TABLE IF NOT EXISTS checks (
    check_id       uuid PRIMARY KEY,
    candidate_id   uuid NOT NULL,
    exam           text NOT NULL,
    verified       boolean NOT NULL,
    level          integer,
    subject        text,
    score          integer,
    exam_session   text,
    reason_code    text,
    reason         text,
    checked_at     timestamptz NOT NULL,
    stream_version integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS checks_candidate ON checks (candidate_id);
"""


class ReviewEvidence:
    """The `review_evidence` projection: verified degrees and certificate checks."""

    name = EVIDENCE_SCHEMA
    topics = (DEGREE_STREAM.topic, CERTIFICATE_STREAM.topic)
    ddl = _DDL

    async def apply(self, conn: Conn, envelope: EventEnvelope) -> None:
        """Apply one event inside the runner's transaction; other events are ignored."""
        kind = envelope.event_type
        if kind == DegreesVerified.event_type:
            await _degrees_verified(conn, envelope)
        elif kind == DegreeAuthorizationExpired.event_type:
            await _degrees_expired(conn, envelope)
        elif kind == CertificateVerified.event_type:
            await _check_verified(conn, envelope)
        elif kind == CertificateVerificationFailed.event_type:
            await _check_failed(conn, envelope)


async def _degrees_verified(conn: Conn, envelope: EventEnvelope) -> None:
    e = DegreesVerified.model_validate(envelope.payload)
    if not e.degrees:
        return
    await conn.executemany(
        """
        INSERT INTO degrees (degree_ref, candidate_id, degree, valid_until, withdrawn,
                             stream_version)
        VALUES ($1, $2, $3, $4, false, $5)
        ON CONFLICT (degree_ref) DO UPDATE SET candidate_id = EXCLUDED.candidate_id,
            degree = EXCLUDED.degree, valid_until = EXCLUDED.valid_until, withdrawn = false,
            stream_version = EXCLUDED.stream_version
        WHERE degrees.stream_version < EXCLUDED.stream_version
        """,
        [
            (d.degree_ref, e.candidate_id, d.model_dump(mode="json"), e.valid_until,
             envelope.stream_version)
            for d in e.degrees
        ],
    )  # fmt: skip


async def _degrees_expired(conn: Conn, envelope: EventEnvelope) -> None:
    e = DegreeAuthorizationExpired.model_validate(envelope.payload)
    if not e.degree_refs:
        return  # an authorisation that lapsed unused
    await conn.execute(
        "UPDATE degrees SET withdrawn = true, stream_version = $3"
        " WHERE degree_ref = ANY($1::uuid[]) AND candidate_id = $2 AND stream_version < $3",
        e.degree_refs,
        e.candidate_id,
        envelope.stream_version,
    )


_CHECK_UPSERT = """
INSERT INTO checks (check_id, candidate_id, exam, verified, level, subject, score, exam_session,
                    reason_code, reason, checked_at, stream_version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (check_id) DO UPDATE SET candidate_id = EXCLUDED.candidate_id,
    exam = EXCLUDED.exam, verified = EXCLUDED.verified, level = EXCLUDED.level,
    subject = EXCLUDED.subject, score = EXCLUDED.score, exam_session = EXCLUDED.exam_session,
    reason_code = EXCLUDED.reason_code, reason = EXCLUDED.reason,
    checked_at = EXCLUDED.checked_at, stream_version = EXCLUDED.stream_version
WHERE checks.stream_version < EXCLUDED.stream_version
"""


async def _check_verified(conn: Conn, envelope: EventEnvelope) -> None:
    e = CertificateVerified.model_validate(envelope.payload)
    await conn.execute(
        _CHECK_UPSERT,
        e.check_id, e.candidate_id, e.exam.value, True, e.level, e.subject, e.score,
        e.exam_session, None, None, envelope.occurred_at, envelope.stream_version,
    )  # fmt: skip


async def _check_failed(conn: Conn, envelope: EventEnvelope) -> None:
    e = CertificateVerificationFailed.model_validate(envelope.payload)
    await conn.execute(
        _CHECK_UPSERT,
        e.check_id, e.candidate_id, e.exam.value, False, None, None, None, None,
        e.reason_code.value, e.reason, envelope.occurred_at, envelope.stream_version,
    )  # fmt: skip


# --- the evidence view ----------------------------------------------------------------------


class RecordStatus(StrEnum):
    """Whether the record a certificate cites is known to review."""

    FOUND = "found"  # known, and the candidate's own
    UNKNOWN = "unknown"  # not arrived (yet): credential-verify's event is still on its way
    MISMATCH = "mismatch"  # belongs to another candidate: never expected, must be looked into
    NO_REFERENCE = "no_reference"  # the certificate cites nothing to look up


class TranscriptMatch(StrEnum):
    """How a claimed course's ticked transcript line (source_course_name) was found."""

    MATCHED = "matched"
    MISSING = "missing"  # the degree is known but its transcript has no such line
    NOT_NAMED = "not_named"  # the claim names no transcript course
    NO_DEGREE = "no_degree"  # the degree is unknown or not the candidate's
    NOT_APPLICABLE = "not_applicable"  # not a degree route


class CourseEvidence(BaseModel):
    """One claimed course next to the transcript line it was claimed with."""

    course_code: str
    course_name: str
    major_code: str
    source_course_name: str | None
    transcript_match: TranscriptMatch
    transcript_line: TranscriptCourse | None


class DegreeEvidence(BaseModel):
    """The CHSI-verified degree, as credential-verify published it."""

    degree: VerifiedDegree
    valid_until: date | None
    withdrawn: bool  # the verification expired (DegreeAuthorizationExpired): not to be relied on
    differs_from_submission: list[str]  # summary fields the snapshot states differently


class CheckEvidence(BaseModel):
    """The result of a certificate check against the issuing body."""

    check_id: UUID
    exam: str
    verified: bool
    level: int | None
    subject: str | None
    score: int | None
    exam_session: str | None
    reason_code: str | None
    reason: str | None
    checked_at: datetime


class CertificateEvidence(BaseModel):
    """One certificate of the current snapshot with what review knows about its evidence."""

    certificate_id: UUID
    kind: str
    route_id: str
    photo_ids: list[UUID]
    reference: UUID | None  # degree_ref or certificate_check_ref
    record: RecordStatus
    degree: DegreeEvidence | None
    check: CheckEvidence | None
    courses: list[CourseEvidence]
    flags: list[Literal["unknown", "mismatch", "no_reference", "withdrawn", "check_failed"]]


_SPACES = re.compile(r"\s+")
_FULL_WIDTH = str.maketrans("（）", "()")


def _course_key(name: str) -> str:
    """Transcript names compare ignoring spaces and full-/half-width brackets."""
    return _SPACES.sub("", name).translate(_FULL_WIDTH)


def _courses(
    courses: list[ClaimedCourse], degree_route: bool, transcript: list[TranscriptCourse] | None
) -> list[CourseEvidence]:
    lines = {_course_key(t.name): t for t in transcript or []}
    out = []
    for c in courses:
        line = None
        if not degree_route:
            match = TranscriptMatch.NOT_APPLICABLE
        elif transcript is None:
            match = TranscriptMatch.NO_DEGREE
        elif not c.source_course_name:
            match = TranscriptMatch.NOT_NAMED
        else:
            line = lines.get(_course_key(c.source_course_name))
            match = TranscriptMatch.MATCHED if line else TranscriptMatch.MISSING
        out.append(
            CourseEvidence(
                course_code=c.course_code,
                course_name=c.course_name,
                major_code=c.major_code,
                source_course_name=c.source_course_name,
                transcript_match=match,
                transcript_line=line,
            )
        )
    return out


def _degree_route(certificate: ApplicationCertificate) -> bool:
    return certificate.degree is not None or certificate.kind is CertificateKind.DEGREE


def _differences(certificate: ApplicationCertificate, degree: VerifiedDegree) -> list[str]:
    summary = certificate.degree
    assert summary is not None
    fields = (
        "institution", "major_name", "level", "graduation_year", "certificate_number",
        "holder_matches_candidate",
    )  # fmt: skip
    return [f for f in fields if getattr(summary, f) != getattr(degree, f)]


async def evidence_for(conn: Conn, case: ReviewCase) -> list[CertificateEvidence]:
    """The evidence of every certificate of the case's current snapshot, in snapshot order.

    A record of another candidate is reported as a mismatch and its content is not shown.
    """
    certificates = list(case.certificates)
    degree_refs = [c.degree.degree_ref for c in certificates if c.degree is not None]
    check_refs = [
        c.certificate_check_ref
        for c in certificates
        if c.degree is None and c.certificate_check_ref is not None
    ]
    degrees: dict[UUID, Any] = {}
    checks: dict[UUID, Any] = {}
    if degree_refs:
        rows = await conn.fetch(
            f"SELECT degree_ref, candidate_id, degree, valid_until, withdrawn"
            f" FROM {EVIDENCE_SCHEMA}.degrees WHERE degree_ref = ANY($1::uuid[])",
            degree_refs,
        )
        degrees = {r["degree_ref"]: r for r in rows}
    if check_refs:
        rows = await conn.fetch(
            f"SELECT * FROM {EVIDENCE_SCHEMA}.checks WHERE check_id = ANY($1::uuid[])",
            check_refs,
        )
        checks = {r["check_id"]: r for r in rows}

    out = []
    for cert in certificates:
        flags: list[Any] = []
        degree: DegreeEvidence | None = None
        check: CheckEvidence | None = None
        transcript: list[TranscriptCourse] | None = None
        reference = cert.degree.degree_ref if cert.degree else cert.certificate_check_ref
        row: Any = None
        if cert.degree is not None:
            row = degrees.get(cert.degree.degree_ref)
        elif cert.certificate_check_ref is not None:
            row = checks.get(cert.certificate_check_ref)
        if reference is None:
            record = RecordStatus.NO_REFERENCE
        elif row is None:
            record = RecordStatus.UNKNOWN
        elif row["candidate_id"] != case.candidate_id:
            record = RecordStatus.MISMATCH
        else:
            record = RecordStatus.FOUND
        if record is not RecordStatus.FOUND:
            flags.append(record.value)
        elif cert.degree is not None:
            verified = VerifiedDegree.model_validate(row["degree"])
            degree = DegreeEvidence(
                degree=verified,
                valid_until=row["valid_until"],
                withdrawn=row["withdrawn"],
                differs_from_submission=_differences(cert, verified),
            )
            transcript = verified.transcript
            if row["withdrawn"]:
                flags.append("withdrawn")
        else:
            check = CheckEvidence(
                check_id=row["check_id"],
                exam=row["exam"],
                verified=row["verified"],
                level=row["level"],
                subject=row["subject"],
                score=row["score"],
                exam_session=row["exam_session"],
                reason_code=row["reason_code"],
                reason=row["reason"],
                checked_at=row["checked_at"],
            )
            if not row["verified"]:
                flags.append("check_failed")
        out.append(
            CertificateEvidence(
                certificate_id=cert.certificate_id,
                kind=cert.kind.value,
                route_id=cert.route_id,
                photo_ids=list(cert.photo_ids),
                reference=reference,
                record=record,
                degree=degree,
                check=check,
                courses=_courses(list(cert.courses), _degree_route(cert), transcript),
                flags=flags,
            )
        )
    return out
