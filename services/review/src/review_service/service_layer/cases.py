"""Review use cases: load a case, let the reviewer act, append what the case decides.

A case is folded from the application's submission events (kept by the `review_submissions`
projection, event-carried state) merged in time order with review's own `review.decision`
stream. Every command appends with the case's `decision_version` as the expected version: of two
concurrent decisions one wins, the other gets 409 `review.concurrent_decision` and, on reload,
sees the case as it now is.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta

import asyncpg

from contracts.application import ApplicationResubmitted, ApplicationSubmitted
from contracts.base import ContractEvent
from contracts.registry import REGISTRY
from contracts.review import DECISION_STREAM
from eventkit.db import Conn
from eventkit.envelope import Actor, EventEnvelope, Metadata, NewEvent
from eventkit.errors import ConcurrencyError
from eventkit.store import EventStore
from review_service.adapters.people import staff_names
from review_service.adapters.submissions import load_inputs
from review_service.domain.access import Reviewer, may_view
from review_service.domain.case import DEFAULT_LEASE, ReviewCase, Verdict
from review_service.domain.errors import AlreadyClaimed, CaseNotFound, ReviewError

STREAM_TYPE = DECISION_STREAM.stream_type


class ConcurrentDecision(ReviewError):
    """Another reviewer acted on the case at the same moment."""

    code = "review.concurrent_decision"
    status = 409
    default_message = "该申请刚刚被他人办理，请刷新后查看最新状态"


def _decode(envelope: EventEnvelope) -> ContractEvent:
    event = REGISTRY.decode(envelope)
    assert isinstance(event, ContractEvent)
    return event


def _fold(trail: Sequence[EventEnvelope]) -> ReviewCase:
    return ReviewCase.from_events([(_decode(e), e.occurred_at) for e in trail])


SNAPSHOTS = frozenset({ApplicationSubmitted.event_type, ApplicationResubmitted.event_type})


def _from_first_submission(inputs: Sequence[EventEnvelope]) -> list[EventEnvelope]:
    """The application events of a case from its first submission snapshot on (none: no case)."""
    for i, envelope in enumerate(inputs):
        if envelope.event_type in SNAPSHOTS:
            return list(inputs[i:])
    return []


def merge(inputs: Sequence[EventEnvelope], own: Sequence[EventEnvelope]) -> list[EventEnvelope]:
    """Application and review events of one case in the order they happened.

    Each source is ordered already; across the two, causality orders them (a resubmission
    follows the return it answers, a decision follows the submission it judges) and the clocks
    agree far better than the minutes between such steps. On equal times the application's
    event goes first.
    """
    merged: list[EventEnvelope] = []
    i = j = 0
    while i < len(inputs) or j < len(own):
        take_input = j >= len(own) or (
            i < len(inputs) and inputs[i].occurred_at <= own[j].occurred_at
        )
        if take_input:
            merged.append(inputs[i])
            i += 1
        else:
            merged.append(own[j])
            j += 1
    return merged


class Cases:
    """The reviewer's commands and the case view."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        *,
        lease: timedelta = DEFAULT_LEASE,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._pool = pool
        self._store = store
        self.lease = lease
        self._now = clock

    async def _trail(self, conn: Conn, application_id: uuid.UUID) -> list[EventEnvelope]:
        """Every event of one case, both sources, in order; empty when there is no case.

        A case starts with a submission snapshot: an application review knows only from events
        before any submission (a draft withdrawn before it was submitted) never became one, and
        is answered exactly like an id nobody knows.
        """
        inputs = _from_first_submission(await load_inputs(conn, application_id))
        if not inputs:
            return []
        own = await self._store.load(STREAM_TYPE, str(application_id), conn=conn)
        return merge(inputs, own)

    async def load(self, conn: Conn, application_id: uuid.UUID) -> ReviewCase | None:
        """The case as it stands, or None when review has not received it."""
        trail = await self._trail(conn, application_id)
        return _fold(trail) if trail else None

    async def view(self, reviewer: Reviewer, application_id: uuid.UUID) -> ReviewCase:
        """The case, for a reviewer who may see it (404 for anyone else)."""
        async with self._pool.acquire() as conn:
            case = await self.load(conn, application_id)
        if case is None or not may_view(reviewer, case):
            raise CaseNotFound(f"case {application_id} not visible to {reviewer.staff_id}")
        return case

    async def history(
        self, reviewer: Reviewer, application_id: uuid.UUID
    ) -> tuple[ReviewCase, list[EventEnvelope]]:
        """The case and every event of its audit trail, both sources, in order."""
        async with self._pool.acquire() as conn:
            merged = await self._trail(conn, application_id)
        if not merged:
            raise CaseNotFound(f"case {application_id} unknown")
        case = _fold(merged)
        if not may_view(reviewer, case):
            raise CaseNotFound(f"case {application_id} not visible to {reviewer.staff_id}")
        return case, merged

    async def _act(
        self,
        actor: Actor,
        application_id: uuid.UUID,
        decide: Callable[[ReviewCase, datetime], list[ContractEvent]],
    ) -> ReviewCase:
        now = self._now()
        async with self._pool.acquire() as conn, conn.transaction():
            case = await self.load(conn, application_id)
            if case is None:
                raise CaseNotFound(f"case {application_id} unknown")
            try:
                events = decide(case, now)
            except AlreadyClaimed as exc:  # name the holder as the staff directory does
                names = await staff_names(conn, [exc.holder_id])
                if exc.holder_id in names:
                    raise exc.relabelled(names[exc.holder_id]) from None
                raise
            if not events:
                return case
            try:
                await self._store.append(
                    STREAM_TYPE,
                    str(application_id),
                    case.decision_version,
                    [NewEvent.of(e) for e in events],
                    Metadata(actor=actor),
                    conn=conn,
                )
            except ConcurrencyError as exc:
                raise ConcurrentDecision(str(exc)) from exc
            for event in events:
                case = case.apply(event, now)
            return case

    def _reviewer(self, reviewer: Reviewer) -> Actor:
        return Actor(kind="staff", id=str(reviewer.staff_id))

    async def claim(
        self, reviewer: Reviewer, application_id: uuid.UUID, *, submission_number: int
    ) -> ReviewCase:
        """领取 (or renew one's own claim)."""
        return await self._act(
            self._reviewer(reviewer),
            application_id,
            lambda case, now: case.claim(
                reviewer, now, submission_number=submission_number, lease=self.lease
            ),
        )

    async def release(
        self, reviewer: Reviewer, application_id: uuid.UUID, *, submission_number: int
    ) -> ReviewCase:
        """释放: give the case back to the queue."""
        return await self._act(
            self._reviewer(reviewer),
            application_id,
            lambda case, now: case.release(
                reviewer, now, submission_number=submission_number, lease=self.lease
            ),
        )

    async def complete_initial_review(
        self,
        reviewer: Reviewer,
        application_id: uuid.UUID,
        *,
        submission_number: int,
        verdicts: Sequence[Verdict],
        note: str | None,
    ) -> ReviewCase:
        """初审完成: the point's per-course opinion goes to the province."""
        return await self._act(
            self._reviewer(reviewer),
            application_id,
            lambda case, now: case.complete_initial_review(
                reviewer, now, verdicts, note,
                submission_number=submission_number, lease=self.lease,
            ),
        )  # fmt: skip

    async def return_to_candidate(
        self,
        reviewer: Reviewer,
        application_id: uuid.UUID,
        *,
        submission_number: int,
        reason: str,
        course_notes: Mapping[str, str] | None = None,
    ) -> ReviewCase:
        """退回: back to the candidate with a reason."""
        return await self._act(
            self._reviewer(reviewer),
            application_id,
            lambda case, now: case.return_to_candidate(
                reviewer, now, reason, course_notes,
                submission_number=submission_number, lease=self.lease,
            ),
        )  # fmt: skip

    async def approve(
        self,
        reviewer: Reviewer,
        application_id: uuid.UUID,
        *,
        submission_number: int,
        verdicts: Sequence[Verdict],
        objection_deadline: date | None = None,
    ) -> ReviewCase:
        """复审: the province's final per-course decision."""
        return await self._act(
            self._reviewer(reviewer),
            application_id,
            lambda case, now: case.approve(
                reviewer, now, verdicts, objection_deadline,
                submission_number=submission_number, lease=self.lease,
            ),
        )  # fmt: skip

    async def lapse_expired(self, application_ids: Sequence[uuid.UUID]) -> int:
        """Record the expired claims of these cases as lapsed; returns how many lapsed."""
        lapsed = 0
        for application_id in application_ids:
            events: list[ContractEvent] = []

            def decide(
                case: ReviewCase, now: datetime, sink: list[ContractEvent] = events
            ) -> list[ContractEvent]:
                sink[:] = case.lapse(now, self.lease)
                return sink

            try:
                await self._act(Actor.system("review-lease"), application_id, decide)
            except (CaseNotFound, ConcurrentDecision):
                continue  # gone, or someone acted on it meanwhile
            if events:
                lapsed += 1
        return lapsed
