"""What the application service learns from other services' events, to judge and to show.

One eventkit projection (schema `application_evidence`) over identity's candidates (with the
courses the enrolment roster lists as passed), credential-verify's verified degrees and
certificate checks, and media's photos. The rules read it
through `load_candidate` and `load_evidence`; nothing here calls another service.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from application_service.domain.evidence import (
    CandidateFacts,
    CertificateCheckFacts,
    Evidence,
    PhotoFacts,
    TranscriptLine,
    VerifiedDegreeFacts,
)
from contracts.credential import (
    CERTIFICATE_STREAM,
    DEGREE_STREAM,
    CertificateVerificationFailed,
    CertificateVerified,
    DegreeAuthorizationExpired,
    DegreesVerified,
)
from contracts.identity import (
    CANDIDATE_STREAM,
    CandidatePassedCoursesRecorded,
    CandidateProfileUpdated,
    CandidateRegistered,
)
from contracts.media import PHOTO_STREAM, PhotoDeleted, PhotoUploaded
from eventkit.db import Conn
from eventkit.envelope import EventEnvelope

EVIDENCE_SCHEMA = "application_evidence"

_DDL = """
CREATE TABLE IF NOT EXISTS candidates (
    candidate_id          uuid PRIMARY KEY,
    admission_ticket_number text,
    name                  text NOT NULL,
    id_number_masked      text NOT NULL,
    enrolled_major_code   text,
    registration_district text,
    registered_at         timestamptz NOT NULL
);
CREATE TABLE IF NOT EXISTS roster_passed_courses (
    candidate_id uuid NOT NULL,
    course_code  text NOT NULL,
    PRIMARY KEY (candidate_id, course_code)
);
CREATE TABLE IF NOT EXISTS degrees (
    degree_ref   uuid PRIMARY KEY,
    candidate_id uuid NOT NULL,
    degree       jsonb NOT NULL,
    valid_until  date,
    withdrawn    boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS degrees_candidate ON degrees (candidate_id);
CREATE TABLE IF NOT EXISTS checks (
    check_id     uuid PRIMARY KEY,
    candidate_id uuid NOT NULL,
    exam         text NOT NULL,
    verified     boolean NOT NULL,
    level        integer,
    subject      text,
    score        integer,
    exam_session text,
    reason_code  text,
    checked_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS checks_candidate ON checks (candidate_id);
CREATE TABLE IF NOT EXISTS photos (
    photo_id    uuid PRIMARY KEY,
    owner_id    uuid NOT NULL,
    width       integer NOT NULL,
    height      integer NOT NULL,
    uploaded_at timestamptz NOT NULL,
    deleted     boolean NOT NULL DEFAULT false
);
CREATE INDEX IF NOT EXISTS photos_owner ON photos (owner_id);
"""


class EvidenceProjection:
    """The `application_evidence` projection."""

    name = EVIDENCE_SCHEMA
    topics = (
        CANDIDATE_STREAM.topic,
        DEGREE_STREAM.topic,
        CERTIFICATE_STREAM.topic,
        PHOTO_STREAM.topic,
    )
    ddl = _DDL

    async def apply(self, conn: Conn, envelope: EventEnvelope) -> None:
        """Apply one event of interest; others are ignored."""
        handler = _HANDLERS.get(envelope.event_type)
        if handler is not None:
            await handler(conn, envelope)


async def _registered(conn: Conn, envelope: EventEnvelope) -> None:
    e = CandidateRegistered.model_validate(envelope.payload)
    await conn.execute(
        """
        INSERT INTO candidates (candidate_id, name, id_number_masked, enrolled_major_code,
                                registration_district, registered_at, admission_ticket_number)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        ON CONFLICT (candidate_id) DO UPDATE SET name = EXCLUDED.name,
            admission_ticket_number = EXCLUDED.admission_ticket_number
        """,
        e.candidate_id,
        e.name,
        e.id_number_masked,
        e.enrolled_major_code,
        e.registration_district,
        envelope.occurred_at,
        e.admission_ticket_number,
    )
    await _roster_passed(conn, e.candidate_id, e.passed_course_codes)


async def _roster_passed(conn: Conn, candidate_id: uuid.UUID, codes: list[str]) -> None:
    """The courses the roster lists as passed for the candidate: the whole set, replaced."""
    await conn.execute("DELETE FROM roster_passed_courses WHERE candidate_id = $1", candidate_id)
    await conn.executemany(
        "INSERT INTO roster_passed_courses (candidate_id, course_code) VALUES ($1, $2)"
        " ON CONFLICT DO NOTHING",
        [(candidate_id, code) for code in codes],
    )


async def _passed_recorded(conn: Conn, envelope: EventEnvelope) -> None:
    e = CandidatePassedCoursesRecorded.model_validate(envelope.payload)
    await _roster_passed(conn, e.candidate_id, e.passed_course_codes)


async def _profile(conn: Conn, envelope: EventEnvelope) -> None:
    e = CandidateProfileUpdated.model_validate(envelope.payload)
    if e.name:
        await conn.execute(
            "UPDATE candidates SET name = $2 WHERE candidate_id = $1", e.candidate_id, e.name
        )
    if e.registration_district:
        await conn.execute(
            "UPDATE candidates SET registration_district = $2 WHERE candidate_id = $1",
            e.candidate_id,
            e.registration_district,
        )


async def _degrees(conn: Conn, envelope: EventEnvelope) -> None:
    e = DegreesVerified.model_validate(envelope.payload)
    await conn.executemany(
        """
        INSERT INTO degrees (degree_ref, candidate_id, degree, valid_until)
        VALUES ($1, $2, $3, $4)
        ON CONFLICT (degree_ref) DO UPDATE SET degree = EXCLUDED.degree,
            valid_until = EXCLUDED.valid_until, withdrawn = false
        """,
        [
            (d.degree_ref, e.candidate_id, d.model_dump(mode="json"), e.valid_until)
            for d in e.degrees
        ],
    )


async def _degrees_expired(conn: Conn, envelope: EventEnvelope) -> None:
    e = DegreeAuthorizationExpired.model_validate(envelope.payload)
    if e.degree_refs:
        await conn.execute(
            "UPDATE degrees SET withdrawn = true WHERE degree_ref = ANY($1::uuid[])",
            e.degree_refs,
        )


async def _check_verified(conn: Conn, envelope: EventEnvelope) -> None:
    e = CertificateVerified.model_validate(envelope.payload)
    await conn.execute(
        """
        INSERT INTO checks (check_id, candidate_id, exam, verified, level, subject, score,
                            exam_session, checked_at)
        VALUES ($1, $2, $3, true, $4, $5, $6, $7, $8)
        ON CONFLICT (check_id) DO NOTHING
        """,
        e.check_id,
        e.candidate_id,
        e.exam.value,
        e.level,
        e.subject,
        e.score,
        e.exam_session,
        envelope.occurred_at,
    )


async def _check_failed(conn: Conn, envelope: EventEnvelope) -> None:
    e = CertificateVerificationFailed.model_validate(envelope.payload)
    await conn.execute(
        """
        INSERT INTO checks (check_id, candidate_id, exam, verified, reason_code, checked_at)
        VALUES ($1, $2, $3, false, $4, $5)
        ON CONFLICT (check_id) DO NOTHING
        """,
        e.check_id,
        e.candidate_id,
        e.exam.value,
        e.reason_code.value,
        envelope.occurred_at,
    )


async def _photo_uploaded(conn: Conn, envelope: EventEnvelope) -> None:
    e = PhotoUploaded.model_validate(envelope.payload)
    await conn.execute(
        """
        INSERT INTO photos (photo_id, owner_id, width, height, uploaded_at)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (photo_id) DO NOTHING
        """,
        e.photo_id,
        e.owner_id,
        e.width,
        e.height,
        envelope.occurred_at,
    )


async def _photo_deleted(conn: Conn, envelope: EventEnvelope) -> None:
    e = PhotoDeleted.model_validate(envelope.payload)
    await conn.execute("UPDATE photos SET deleted = true WHERE photo_id = $1", e.photo_id)


_HANDLERS = {
    CandidateRegistered.event_type: _registered,
    CandidateProfileUpdated.event_type: _profile,
    CandidatePassedCoursesRecorded.event_type: _passed_recorded,
    DegreesVerified.event_type: _degrees,
    DegreeAuthorizationExpired.event_type: _degrees_expired,
    CertificateVerified.event_type: _check_verified,
    CertificateVerificationFailed.event_type: _check_failed,
    PhotoUploaded.event_type: _photo_uploaded,
    PhotoDeleted.event_type: _photo_deleted,
}


async def load_candidate(
    conn: Conn,
    candidate_id: uuid.UUID,
    *,
    passed: frozenset[str] = frozenset(),
    exempted: frozenset[str] = frozenset(),
) -> CandidateFacts | None:
    """The applicant as identity announced them, or None if not (yet) known here.

    Passed courses come from two sources: the enrolment roster's 已合格课程, which identity
    publishes (CandidateRegistered, CandidatePassedCoursesRecorded; kept here by candidate),
    and the score records ops import (`application scores-import`, by admission-ticket number).
    """
    row = await conn.fetchrow(
        f"SELECT name, admission_ticket_number FROM {EVIDENCE_SCHEMA}.candidates"
        " WHERE candidate_id = $1",
        candidate_id,
    )
    if row is None:
        return None
    recorded = await conn.fetch(
        "SELECT course_code FROM application.passed_courses WHERE admission_ticket_number = $1"
        f" UNION SELECT course_code FROM {EVIDENCE_SCHEMA}.roster_passed_courses"
        " WHERE candidate_id = $2",
        row["admission_ticket_number"],
        candidate_id,
    )
    return CandidateFacts(
        candidate_id=candidate_id,
        name=row["name"],
        passed_courses=passed | frozenset(r["course_code"] for r in recorded),
        exempted_courses=exempted,
    )


def _degree(row: Any) -> VerifiedDegreeFacts:
    d = row["degree"]
    return VerifiedDegreeFacts(
        degree_ref=row["degree_ref"],
        candidate_id=row["candidate_id"],
        level=d["level"],
        institution=d["institution"],
        major_name=d["major_name"],
        category=d["category"],
        graduation_year=d["graduation_year"],
        conclusion=d["conclusion"],
        certificate_number=d.get("certificate_number"),
        holder_matches_candidate=d["holder_matches_candidate"],
        verified_at=datetime.fromisoformat(d["chsi_verified_at"]),
        valid_until=row["valid_until"],
        transcript=tuple(
            TranscriptLine(
                name=t["name"],
                code=t.get("code"),
                credits=t.get("credits"),
                hours=t.get("hours"),
                score=t.get("score"),
                assessment=t.get("assessment"),
            )
            for t in d.get("transcript", [])
        ),
    )


async def load_evidence(conn: Conn, candidate_id: uuid.UUID) -> Evidence:
    """Every degree, check and photo of one candidate (withdrawn degrees left out)."""
    degrees = await conn.fetch(
        f"SELECT * FROM {EVIDENCE_SCHEMA}.degrees WHERE candidate_id = $1 AND NOT withdrawn",
        candidate_id,
    )
    checks = await conn.fetch(
        f"SELECT * FROM {EVIDENCE_SCHEMA}.checks WHERE candidate_id = $1", candidate_id
    )
    photos = await conn.fetch(
        f"SELECT * FROM {EVIDENCE_SCHEMA}.photos WHERE owner_id = $1", candidate_id
    )
    return Evidence(
        degrees={r["degree_ref"]: _degree(r) for r in degrees},
        checks={
            r["check_id"]: CertificateCheckFacts(
                check_id=r["check_id"],
                candidate_id=r["candidate_id"],
                exam=r["exam"],
                verified=r["verified"],
                level=r["level"],
                subject=r["subject"],
                score=r["score"],
                exam_session=r["exam_session"],
                reason_code=r["reason_code"],
            )
            for r in checks
        },
        photos={
            r["photo_id"]: PhotoFacts(
                photo_id=r["photo_id"], owner_id=r["owner_id"], deleted=r["deleted"]
            )
            for r in photos
        },
    )
