"""The application use cases: load the aggregate, give it the facts, store what it decides.

Each command runs in one transaction: the aggregate is folded from its stream, the rules judge
the command against the catalogue version the application was drafted with, the candidate's
projected facts and the window; the new events are appended with the stream version as the
expected version (a concurrent command loses with 409) and the `application.applications` row
follows in the same transaction. The row's partial unique index makes "one open application per
candidate per window" hold under concurrent drafts; a case number is drawn inside the
submitting transaction, so a refused submission consumes none.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

import asyncpg

from application_service.adapters.evidence import load_candidate, load_evidence
from application_service.domain import errors
from application_service.domain.application import (
    ApplicationStatus,
    CertificateInput,
    ExemptionApplication,
)
from application_service.domain.catalogue import Catalogue
from application_service.domain.evidence import CandidateFacts, Evidence
from application_service.service_layer.windows import Windows
from contracts.application import EXEMPTION_STREAM, ApplicationDecided
from contracts.base import ContractEvent, CourseDecision, CourseOutcome, ReviewStage
from contracts.registry import REGISTRY
from eventkit.db import Conn
from eventkit.envelope import Actor, EventEnvelope, Metadata, NewEvent
from eventkit.errors import ConcurrencyError
from eventkit.store import EventStore

STREAM_TYPE = EXEMPTION_STREAM.stream_type
CatalogueSource = Callable[[str], Awaitable[Catalogue]]
ActiveVersion = Callable[[], Awaitable[str | None]]


class ApplicationNotFound(errors.ApplicationError):
    """No such application for this candidate (another's is not told apart)."""

    code = "application.not_found"
    status = 404
    default_message = "免考申请不存在"


class CandidateNotSynced(errors.ApplicationError):
    """The candidate's registration has not reached this service yet."""

    code = "application.candidate_not_synced"
    status = 503
    retry_after = 5
    default_message = "账户信息正在同步，请稍后再试"


class ConcurrentChange(errors.ApplicationError):
    """Someone changed the application at the same moment."""

    code = "application.concurrent_change"
    status = 409
    default_message = "申请已在其他页面被修改，请刷新后重试"


class NoActiveCatalogue(errors.ApplicationError):
    """Ops has not activated a catalogue yet."""

    code = "application.no_catalogue"
    status = 503
    retry_after = 60
    default_message = "专业课程目录尚未发布，请稍后再试"


class PhotoCitations(Protocol):
    """Media's record of which certificates cite which photos (ADR 0015): asked before a
    certificate is recorded, so that media never deletes a photo a certificate cites."""

    async def cite(
        self,
        credential: str,
        application_id: uuid.UUID,
        certificate_id: uuid.UUID,
        photo_ids: Sequence[uuid.UUID],
    ) -> None:
        """Record the citations on the candidate's behalf (`credential`: their token); raise
        `errors.PhotoDeleted` for a photo media no longer has."""


class CitationUnavailable(errors.ApplicationError):
    """A certificate with photos was sent without the candidate's credential for media."""

    code = "application.photo_citation_unavailable"
    status = 503
    retry_after = 5
    default_message = "照片服务暂时不可用，请稍后再试"


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One step of an application's history (办件进度)."""

    event_type: str
    occurred_at: datetime
    actor_kind: str
    payload: dict[str, object]


def _events_of(envelopes: Sequence[EventEnvelope]) -> list[ContractEvent]:
    events: list[ContractEvent] = []
    for envelope in envelopes:
        event = REGISTRY.decode(envelope)
        assert isinstance(event, ContractEvent)
        events.append(event)
    return events


class Applications:
    """Commands and views of exemption applications."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        windows: Windows,
        *,
        catalogue: CatalogueSource,
        active_version: ActiveVersion,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
        photo_citations: PhotoCitations | None = None,
    ) -> None:
        self._photo_citations = photo_citations
        self._pool = pool
        self._store = store
        self._windows = windows
        self._catalogue = catalogue
        self._active_version = active_version
        self._now = clock
        self._new_id = new_id

    # -- loading ----------------------------------------------------------------------------

    async def _facts(self, conn: Conn, candidate_id: uuid.UUID) -> tuple[CandidateFacts, Evidence]:
        granted = frozenset(
            r["course_code"]
            for r in await conn.fetch(
                "SELECT course_code FROM application.exempted_courses WHERE candidate_id = $1",
                candidate_id,
            )
        )
        candidate = await load_candidate(conn, candidate_id, exempted=granted)
        if candidate is None:
            raise CandidateNotSynced(f"candidate {candidate_id} not known yet")
        return candidate, await load_evidence(conn, candidate_id)

    async def candidate_facts(self, candidate_id: uuid.UUID) -> CandidateFacts:
        """The candidate as the rules see them: passed and already exempted courses included."""
        async with self._pool.acquire() as conn:
            candidate, _ = await self._facts(conn, candidate_id)
        return candidate

    async def evidence_arrived(
        self,
        candidate_id: uuid.UUID,
        *,
        photo_ids: Sequence[uuid.UUID] = (),
        check_id: uuid.UUID | None = None,
        degree_ref: uuid.UUID | None = None,
        timeout: float = 8.0,
        interval: float = 0.2,
    ) -> bool:
        """Whether the evidence projection knows these photos, check and degree, waiting up to
        `timeout` seconds: the portal has just uploaded or checked them, and their events reach
        this service through Kafka a moment later (read-your-writes across services)."""
        deadline = time.monotonic() + timeout
        while True:
            async with self._pool.acquire() as conn:
                evidence = await load_evidence(conn, candidate_id)
            if (
                all(p in evidence.photos for p in photo_ids)
                and (check_id is None or check_id in evidence.checks)
                and (degree_ref is None or degree_ref in evidence.degrees)
            ):
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(interval)

    async def _load(
        self, conn: Conn, candidate_id: uuid.UUID | None, application_id: uuid.UUID
    ) -> ExemptionApplication:
        envelopes = await self._store.load(STREAM_TYPE, str(application_id), conn=conn)
        if not envelopes:
            raise ApplicationNotFound(f"no application {application_id}")
        application = ExemptionApplication.from_events(_events_of(envelopes))
        if candidate_id is not None and application.candidate_id != candidate_id:
            raise ApplicationNotFound(f"application {application_id} is another candidate's")
        return application

    async def _append(
        self,
        conn: Conn,
        application: ExemptionApplication,
        events: Sequence[ContractEvent],
        metadata: Metadata,
        *,
        expected_version: int | None = None,
    ) -> ExemptionApplication:
        if not events:
            return application
        version = application.version if expected_version is None else expected_version
        try:
            await self._store.append(
                STREAM_TYPE,
                str(application.application_id),
                version,
                [NewEvent.of(e) for e in events],
                metadata,
                conn=conn,
            )
        except ConcurrencyError as exc:
            raise ConcurrentChange(str(exc)) from exc
        after = application.apply_all(events)
        granted = [
            (after.candidate_id, d.course_code, after.application_id)
            for e in events
            if isinstance(e, ApplicationDecided)
            for d in e.decisions
            if d.outcome is CourseOutcome.GRANTED
        ]
        if granted:
            await conn.executemany(
                "INSERT INTO application.exempted_courses (candidate_id, course_code,"
                " application_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                granted,
            )
        await conn.execute(
            """
            UPDATE application.applications
            SET status = $2, case_number = $3, submission_number = $4, version = $5,
                updated_at = now()
            WHERE application_id = $1
            """,
            after.application_id,
            after.status.value,
            after.case_number,
            after.submission_number,
            version + len(events),
        )
        return after

    def _actor(self, candidate_id: uuid.UUID, correlation_id: uuid.UUID) -> Metadata:
        return Metadata(
            actor=Actor(kind="candidate", id=str(candidate_id)), correlation_id=correlation_id
        )

    # -- commands ---------------------------------------------------------------------------

    async def draft(
        self,
        candidate_id: uuid.UUID,
        *,
        window_id: uuid.UUID,
        confirmation_point_id: str,
        plan: str,
        major_codes: Sequence[str],
        correlation_id: uuid.UUID,
    ) -> ExemptionApplication:
        """Start an application (wizard step 1) under the active catalogue."""
        version = await self._active_version()
        if version is None:
            raise NoActiveCatalogue("no active catalogue version")
        catalogue = await self._catalogue(version)
        window = await self._windows.get(window_id)
        application_id = self._new_id()
        async with self._pool.acquire() as conn, conn.transaction():
            candidate, _ = await self._facts(conn, candidate_id)
            events = ExemptionApplication.draft(
                application_id=application_id,
                candidate=candidate,
                window=window,
                confirmation_point_id=confirmation_point_id,
                plan=plan,
                major_codes=major_codes,
                catalogue=catalogue,
                now=self._now(),
            )
            try:
                await conn.execute(
                    """
                    INSERT INTO application.applications (application_id, candidate_id,
                        window_id, status, confirmation_point_id, catalogue_version, version)
                    VALUES ($1, $2, $3, 'draft', $4, $5, 0)
                    """,
                    application_id,
                    candidate_id,
                    window_id,
                    confirmation_point_id,
                    catalogue.version,
                )
            except asyncpg.UniqueViolationError as exc:
                raise errors.OpenApplicationExists(f"{candidate_id} has one open") from exc
            await self._store.append(
                STREAM_TYPE,
                str(application_id),
                0,
                [NewEvent.of(e) for e in events],
                self._actor(candidate_id, correlation_id),
                conn=conn,
            )
            await conn.execute(
                "UPDATE application.applications SET version = $2 WHERE application_id = $1",
                application_id,
                len(events),
            )
        return ExemptionApplication.from_events(events)

    async def _edit(
        self,
        candidate_id: uuid.UUID,
        application_id: uuid.UUID,
        correlation_id: uuid.UUID,
        decide: Callable[
            [ExemptionApplication, CandidateFacts, Evidence, Catalogue], list[ContractEvent]
        ],
        *,
        window_check: Callable[[ExemptionApplication, datetime], Awaitable[None]] | None = None,
        before_append: Callable[[], Awaitable[None]] | None = None,
    ) -> ExemptionApplication:
        async with self._pool.acquire() as conn, conn.transaction():
            application = await self._load(conn, candidate_id, application_id)
            if window_check is not None:
                await window_check(application, self._now())
            catalogue = await self._catalogue(application.catalogue_version)
            candidate, evidence = await self._facts(conn, candidate_id)
            events = decide(application, candidate, evidence, catalogue)
            if before_append is not None and events:
                await before_append()
            return await self._append(
                conn, application, events, self._actor(candidate_id, correlation_id)
            )

    async def _editable_window(self, application: ExemptionApplication, now: datetime) -> None:
        window = await self._windows.get(application.window_id)
        allowed = (
            window.accepting_resubmissions(now)
            if application.status is ApplicationStatus.RETURNED
            else window.accepting_applications(now)
        )
        if not allowed:
            raise errors.WindowClosed(f"window {window.window_id} is {window.stage(now)}")

    async def add_certificate(
        self,
        candidate_id: uuid.UUID,
        application_id: uuid.UUID,
        certificate: CertificateInput,
        *,
        correlation_id: uuid.UUID,
        credential: str | None = None,
    ) -> ExemptionApplication:
        """新增免考课程: add a certificate with its courses and photos (draft or returned).

        Once the rules accept it, and before CertificateAdded is appended, media records that
        the certificate cites its photos (`PhotoCitations`, with the candidate's `credential`):
        from then on media cannot delete them, and a photo deleted just before refuses the
        certificate (`application.photo_deleted`). A failure after that leaves a citation
        without a certificate: the photo is kept, never lost (ADR 0015)."""
        now = self._now()
        citations = self._photo_citations

        async def cite_photos() -> None:
            if citations is None or not certificate.photo_ids:
                return
            if credential is None:
                raise CitationUnavailable("no credential to cite the photos with at media")
            await citations.cite(
                credential, application_id, certificate.certificate_id, certificate.photo_ids
            )

        return await self._edit(
            candidate_id,
            application_id,
            correlation_id,
            lambda app, candidate, evidence, catalogue: app.add_certificate(
                certificate, candidate=candidate, evidence=evidence, catalogue=catalogue, now=now
            ),
            window_check=self._editable_window,
            before_append=cite_photos,
        )

    async def remove_certificate(
        self,
        candidate_id: uuid.UUID,
        application_id: uuid.UUID,
        certificate_id: uuid.UUID,
        *,
        correlation_id: uuid.UUID,
    ) -> ExemptionApplication:
        """删除课程: remove a certificate and its courses (draft or returned)."""
        return await self._edit(
            candidate_id,
            application_id,
            correlation_id,
            lambda app, *_: app.remove_certificate(certificate_id),
            window_check=self._editable_window,
        )

    async def submit(
        self,
        candidate_id: uuid.UUID,
        application_id: uuid.UUID,
        *,
        declaration_accepted: bool,
        correlation_id: uuid.UUID,
    ) -> ExemptionApplication:
        """提交 (with the 承诺书 ticked), or 重新申请 for a returned application."""
        now = self._now()
        async with self._pool.acquire() as conn, conn.transaction():
            application = await self._load(conn, candidate_id, application_id)
            window = await self._windows.get(application.window_id)
            catalogue = await self._catalogue(application.catalogue_version)
            candidate, evidence = await self._facts(conn, candidate_id)
            if application.status is ApplicationStatus.RETURNED:
                events = application.resubmit(
                    declaration_accepted=declaration_accepted,
                    now=now,
                    window=window,
                    candidate=candidate,
                    evidence=evidence,
                    catalogue=catalogue,
                )
            else:
                case_number = application.case_number or await self._next_case_number(conn, now)
                events = application.submit(
                    declaration_accepted=declaration_accepted,
                    case_number=case_number,
                    now=now,
                    window=window,
                    candidate=candidate,
                    evidence=evidence,
                    catalogue=catalogue,
                )
            return await self._append(
                conn, application, events, self._actor(candidate_id, correlation_id)
            )

    async def _next_case_number(self, conn: Conn, now: datetime) -> str:
        year = now.astimezone(UTC).year
        number = await conn.fetchval(
            """
            INSERT INTO application.case_sequences (year, last) VALUES ($1, 1)
            ON CONFLICT (year) DO UPDATE SET last = application.case_sequences.last + 1
            RETURNING last
            """,
            year,
        )
        if number > 999_999:
            raise errors.ApplicationError(f"case numbers of {year} are exhausted")
        return f"MK{year}{number:06d}"

    async def withdraw(
        self,
        candidate_id: uuid.UUID,
        application_id: uuid.UUID,
        *,
        reason: str | None,
        correlation_id: uuid.UUID,
    ) -> ExemptionApplication:
        """撤回: the candidate withdraws (not after a decision)."""
        return await self._edit(
            candidate_id, application_id, correlation_id, lambda app, *_: app.withdraw(reason)
        )

    # -- policies reacting to review ----------------------------------------------------------

    async def on_returned(
        self,
        conn: Conn,
        cause: EventEnvelope,
        *,
        application_id: uuid.UUID,
        stage: ReviewStage,
        reason: str,
        submission_number: int,
    ) -> None:
        """Review returned the application: the candidate may fix it and resubmit."""
        application = await self._load(conn, None, application_id)
        events = application.returned(stage, reason, submission_number)
        await self._append(
            conn, application, events, Metadata.reacting_to(cause, Actor.system("review-policy"))
        )

    async def on_decided(
        self,
        conn: Conn,
        cause: EventEnvelope,
        *,
        application_id: uuid.UUID,
        decisions: Sequence[CourseDecision],
        objection_deadline: date | None = None,
    ) -> None:
        """The province decided: record the per-course result."""
        application = await self._load(conn, None, application_id)
        events = application.decided(decisions, objection_deadline)
        await self._append(
            conn, application, events, Metadata.reacting_to(cause, Actor.system("review-policy"))
        )

    # -- views ------------------------------------------------------------------------------

    async def mine(self, candidate_id: uuid.UUID) -> list[ExemptionApplication]:
        """The candidate's applications, newest first."""
        async with self._pool.acquire() as conn:
            ids = await conn.fetch(
                "SELECT application_id FROM application.applications WHERE candidate_id = $1"
                " ORDER BY created_at DESC",
                candidate_id,
            )
            return [await self._load(conn, candidate_id, r["application_id"]) for r in ids]

    async def details(
        self, candidate_id: uuid.UUID, application_id: uuid.UUID
    ) -> tuple[ExemptionApplication, list[TimelineEntry]]:
        """One application and its timeline (办件进度)."""
        async with self._pool.acquire() as conn:
            envelopes = await self._store.load(STREAM_TYPE, str(application_id), conn=conn)
        if not envelopes:
            raise ApplicationNotFound(f"no application {application_id}")
        application = ExemptionApplication.from_events(_events_of(envelopes))
        if application.candidate_id != candidate_id:
            raise ApplicationNotFound(f"application {application_id} is another candidate's")
        timeline = [
            TimelineEntry(e.event_type, e.occurred_at, e.actor.kind, e.payload) for e in envelopes
        ]
        return application, timeline
