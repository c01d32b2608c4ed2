"""Loads parsed roster rows into PostgreSQL: COPY chunks into staging, then one upsert per chunk."""

from __future__ import annotations

import hashlib
import itertools
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from contracts.identity import CANDIDATE_STREAM, CandidatePassedCoursesRecorded
from eventkit.db import Conn
from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.errors import ConcurrencyError
from eventkit.store import EventStore
from identity_service.adapters.pii import PURPOSE_ROSTER_ID_NUMBER, PiiCipher
from identity_service.domain.roster import (
    ROSTER_STREAM_ID,
    ROSTER_STREAM_TYPE,
    EnrolmentRosterImported,
    RejectedRow,
    RosterRow,
    RowError,
)

CHUNK_ROWS = 5_000
# One import at a time: two concurrent imports could each pass the ID-number conflict check.
_IMPORT_LOCK = 0x69647273  # "idrs"

_STAGING_COLUMNS = (
    "line_number",
    "ticket_number",
    "id_lookup_hash",
    "id_number_encrypted",
    "id_number_masked",
    "name",
    "gender",
    "exam_district",
    "registration_district",
    "major_code",
    "passed_courses",
    "content_hash",
)
_CREATE_STAGING = """
CREATE TEMP TABLE roster_staging (
    line_number integer NOT NULL, ticket_number text NOT NULL, id_lookup_hash text NOT NULL,
    id_number_encrypted bytea NOT NULL, id_number_masked text NOT NULL, name text NOT NULL,
    gender text NOT NULL, exam_district text NOT NULL, registration_district text NOT NULL,
    major_code text NOT NULL, passed_courses text[] NOT NULL, content_hash text NOT NULL
) ON COMMIT DROP
"""
# An ID number already on the roster under another ticket would break the unique index; those
# lines are reported instead, and leave the staging table before the upsert.
_TAKE_ID_CONFLICTS = """
DELETE FROM roster_staging s
USING identity.roster r
WHERE r.id_lookup_hash = s.id_lookup_hash AND r.ticket_number <> s.ticket_number
RETURNING s.line_number
"""
_UPSERT = """
INSERT INTO identity.roster AS r (
    ticket_number, id_lookup_hash, id_number_encrypted, id_number_masked, name, gender,
    exam_district, registration_district, major_code, passed_courses, content_hash, import_id)
SELECT ticket_number, id_lookup_hash, id_number_encrypted, id_number_masked, name, gender,
       exam_district, registration_district, major_code, passed_courses, content_hash, $1
FROM roster_staging
ON CONFLICT (ticket_number) DO UPDATE SET
    id_lookup_hash = excluded.id_lookup_hash,
    id_number_encrypted = excluded.id_number_encrypted,
    id_number_masked = excluded.id_number_masked,
    name = excluded.name,
    gender = excluded.gender,
    exam_district = excluded.exam_district,
    registration_district = excluded.registration_district,
    major_code = excluded.major_code,
    passed_courses = excluded.passed_courses,
    content_hash = excluded.content_hash,
    import_id = excluded.import_id,
    updated_at = now()
WHERE r.content_hash IS DISTINCT FROM excluded.content_hash
RETURNING (xmax = 0) AS inserted
"""
# Registered candidates whose 已合格课程 this chunk changes: the application service learns it
# from a CandidatePassedCoursesRecorded on the candidate's stream (registration carries the
# courses the roster listed then). An account registered before registration carried them (no
# event of its stream names `passed_course_codes`) gets them once, even from an unchanged row.
_PASSED_CHANGES = """
SELECT a.candidate_id, s.ticket_number, s.passed_courses
FROM roster_staging s
JOIN identity.roster r ON r.ticket_number = s.ticket_number
JOIN identity.candidate_accounts a ON a.ticket_number = s.ticket_number
WHERE r.passed_courses IS DISTINCT FROM s.passed_courses
   OR (cardinality(s.passed_courses) > 0 AND NOT EXISTS (
        SELECT 1 FROM eventkit.events e
        WHERE e.stream_type = 'identity.candidate' AND e.stream_id = a.candidate_id::text
          AND e.payload ? 'passed_course_codes'))
ORDER BY s.line_number
"""
CANDIDATE_STREAM_TYPE = CANDIDATE_STREAM.stream_type
_APPEND_ATTEMPTS = 5


@dataclass
class _Chunk:
    """Up to CHUNK_ROWS lines, parsed: staging records for the valid ones, errors for the rest."""

    rows_read: int
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    records: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass
class ImportReport:
    """What one import did: counts, every rejected line's errors, and how long it took."""

    import_id: uuid.UUID
    file_name: str
    file_sha256: str
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    duration_s: float = 0.0
    encoding: str = "utf-8"

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of the whole import."""
        return self.rows_read / self.duration_s if self.duration_s else 0.0


def content_hash(row: RosterRow, lookup_hash: str) -> str:
    """Change detection: sha256 over the row's fields, the ID number only in its keyed form."""
    parts = (
        lookup_hash,
        row.name,
        row.gender.value,
        row.exam_district,
        row.registration_district,
        row.major_code,
        ";".join(row.passed_courses),
    )
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def parse_actor(text: str) -> Actor:
    """'ops:name' (or 'staff:id') as an eventkit Actor."""
    kind, sep, actor_id = text.partition(":")
    if not sep or kind not in ("ops", "staff"):
        raise ValueError("actor must look like ops:<name> or staff:<id>")
    return Actor(kind=kind, id=actor_id)


class RosterImporter:
    """Writes a roster import, its record in roster_imports and its event, in one transaction."""

    def __init__(self, pool: asyncpg.Pool, cipher: PiiCipher, *, chunk_rows: int = CHUNK_ROWS):
        self._pool = pool
        self._cipher = cipher
        self._store = EventStore(pool)
        self._chunk_rows = chunk_rows

    async def run(
        self,
        rows: Iterable[RosterRow | RejectedRow],
        *,
        file_name: str,
        file_sha256: str,
        actor: str,
        encoding: str = "utf-8",
    ) -> ImportReport:
        """Import parsed rows; a rejected or conflicting row is reported and the rest load."""
        started = time.perf_counter()
        metadata = Metadata(actor=parse_actor(actor))
        report = ImportReport(uuid.uuid4(), file_name, file_sha256, encoding=encoding)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _IMPORT_LOCK)
            await conn.execute(
                "INSERT INTO identity.roster_imports"
                " (import_id, file_name, file_sha256, started_at, actor)"
                " VALUES ($1, $2, $3, $4, $5)",
                report.import_id,
                file_name,
                file_sha256,
                datetime.now(UTC),
                actor,
            )
            await conn.execute(_CREATE_STAGING)
            await self._load_all(conn, iter(rows), report, metadata)
            await conn.execute(
                """
                UPDATE identity.roster_imports SET rows_read = $2, rows_inserted = $3,
                    rows_updated = $4, rows_unchanged = $5, rows_rejected = $6, finished_at = $7
                WHERE import_id = $1
                """,
                report.import_id,
                report.rows_read,
                report.inserted,
                report.updated,
                report.unchanged,
                report.rejected,
                datetime.now(UTC),
            )
            version = len(await self._store.load(ROSTER_STREAM_TYPE, ROSTER_STREAM_ID, conn=conn))
            event = EnrolmentRosterImported(
                import_id=report.import_id,
                file_sha256=file_sha256,
                rows_read=report.rows_read,
                rows_inserted=report.inserted,
                rows_updated=report.updated,
                rows_unchanged=report.unchanged,
                rows_rejected=report.rejected,
            )
            await self._store.append(
                ROSTER_STREAM_TYPE,
                ROSTER_STREAM_ID,
                version,
                [NewEvent.of(event)],
                metadata,
                conn=conn,
            )
        report.errors.sort(key=lambda e: e.line_number)
        report.duration_s = time.perf_counter() - started
        return report

    async def _load_all(
        self,
        conn: Conn,
        rows: Iterator[RosterRow | RejectedRow],
        report: ImportReport,
        metadata: Metadata,
    ) -> None:
        # Parsing in a worker thread while the database works was tried: under the GIL it saved
        # under 5% (bench/roster_import.py), not worth a thread touching the parser.
        while items := list(itertools.islice(rows, self._chunk_rows)):
            await self._load_chunk(conn, self._prepare(items), report, metadata)

    def _prepare(self, items: Sequence[RosterRow | RejectedRow]) -> _Chunk:
        chunk = _Chunk(rows_read=len(items))
        for item in items:
            if isinstance(item, RejectedRow):
                chunk.rejected += 1
                chunk.errors.extend(item.errors)
            else:
                chunk.records.append(self._record(item))
        return chunk

    async def _load_chunk(
        self, conn: Conn, chunk: _Chunk, report: ImportReport, metadata: Metadata
    ) -> None:
        report.rows_read += chunk.rows_read
        report.rejected += chunk.rejected
        report.errors.extend(chunk.errors)
        records = chunk.records
        if not records:
            return
        await conn.execute("TRUNCATE roster_staging")
        await conn.copy_records_to_table(
            "roster_staging", records=records, columns=_STAGING_COLUMNS
        )
        conflicts = sorted(r["line_number"] for r in await conn.fetch(_TAKE_ID_CONFLICTS))
        for line_number in conflicts:
            report.errors.append(
                RowError(
                    line_number,
                    "id_number",
                    "identity.roster_id_number_taken",
                    "该身份证号已在名册中登记在另一个准考证号下",
                )
            )
        report.rejected += len(conflicts)
        changes = await conn.fetch(_PASSED_CHANGES)
        written = await conn.fetch(_UPSERT, report.import_id)
        for change in changes:
            await self._record_passed_courses(conn, change, metadata)
        inserted = sum(1 for r in written if r["inserted"])
        report.inserted += inserted
        report.updated += len(written) - inserted
        report.unchanged += len(records) - len(conflicts) - len(written)

    async def _record_passed_courses(
        self, conn: Conn, change: asyncpg.Record, metadata: Metadata
    ) -> None:
        """Append CandidatePassedCoursesRecorded to the candidate's stream (course codes and the
        ticket number only: no ID or mobile number goes into an event)."""
        event = CandidatePassedCoursesRecorded(
            candidate_id=change["candidate_id"],
            admission_ticket_number=change["ticket_number"],
            passed_course_codes=list(change["passed_courses"]),
        )
        stream_id = str(change["candidate_id"])
        for attempt in range(_APPEND_ATTEMPTS):  # a profile change may append meanwhile
            version = await self._store.version(CANDIDATE_STREAM_TYPE, stream_id, conn=conn)
            try:
                async with conn.transaction():  # a savepoint: a lost race leaves no trace
                    await self._store.append(
                        CANDIDATE_STREAM_TYPE,
                        stream_id,
                        version,
                        [NewEvent.of(event)],
                        metadata,
                        conn=conn,
                    )
                return
            except ConcurrencyError:
                if attempt == _APPEND_ATTEMPTS - 1:
                    raise

    def _record(self, row: RosterRow) -> tuple[Any, ...]:
        lookup = self._cipher.lookup_hash(row.id_number.value)
        return (
            row.line_number,
            row.ticket_number,
            lookup,
            self._cipher.encrypt(row.id_number.value, PURPOSE_ROSTER_ID_NUMBER),
            row.id_number.masked,
            row.name,
            row.gender.value,
            row.exam_district,
            row.registration_district,
            row.major_code,
            list(row.passed_courses),
            content_hash(row, lookup),
        )
