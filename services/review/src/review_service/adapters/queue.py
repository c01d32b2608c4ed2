"""The review queue (审核队列): every submitted case, where it stands, and who holds it.

An eventkit projection (schema `review_queue`) of the application service's exemption and window
streams and of review's own decision stream. One row per application in `cases`, one per window
in `windows`; the query functions below read them for the queue page of a confirmation point
(初审) or of the provincial office (复审).

Lifecycle of a case, per submission round:
    ApplicationSubmitted / ApplicationResubmitted  -> awaiting_point   (初审)
    InitialReviewCompleted (or a non-final point approval) -> awaiting_province (复审)
    ApplicationReturned -> returned;  ApplicationApproved(final) -> decided
    ApplicationWithdrawn -> withdrawn
ReviewClaimed / ReviewReleased set and clear the claim. A claim carries no expiry: the queue
stores `claimed_at` and the queries decide, from a lease length, whether it is still live.

Redelivery and ordering: the runner's inbox drops exact duplicates; beyond that every change is
guarded so a replayed or stale event is harmless. A snapshot only replaces a case for a higher
submission number; a decision event for an older submission than the case's is ignored; a
decision event for a newer submission (or for a case not seen yet, since the topics are consumed
independently) is held in `held_events` and applied when its submission arrives.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal
from uuid import UUID

from contracts.application import (
    EXEMPTION_STREAM,
    WINDOW_STREAM,
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWindowClosed,
    ApplicationWindowOpened,
    ApplicationWithdrawn,
)
from contracts.base import ReviewStage
from contracts.review import (
    DECISION_STREAM,
    ApplicationApproved,
    ApplicationReturned,
    InitialReviewCompleted,
    ReviewClaimed,
    ReviewReleased,
)
from eventkit.db import Conn
from eventkit.envelope import EventEnvelope
from servicekit.types import in_sane_range

log = logging.getLogger(__name__)

QUEUE_SCHEMA = "review_queue"
DEFAULT_LEASE = timedelta(minutes=30)
MAX_PAGE_SIZE = 100


class CaseStatus(StrEnum):
    """Where a case stands in review."""

    AWAITING_POINT = "awaiting_point"  # 待初审
    AWAITING_PROVINCE = "awaiting_province"  # 待复审
    RETURNED = "returned"  # 已退回
    DECIDED = "decided"  # 已办结
    WITHDRAWN = "withdrawn"  # 已撤回


AWAITING = (CaseStatus.AWAITING_POINT, CaseStatus.AWAITING_PROVINCE)

_DDL = """
CREATE TABLE IF NOT EXISTS windows (
    window_id                uuid PRIMARY KEY,
    name                     text NOT NULL,
    opens_at                 timestamptz NOT NULL,
    applications_close_at    timestamptz NOT NULL,
    point_review_close_at    timestamptz NOT NULL,
    province_review_close_at timestamptz NOT NULL,
    results_published_at     timestamptz NOT NULL,
    closed                   boolean NOT NULL DEFAULT false,
    closed_reason            text,
    closed_at                timestamptz
);
CREATE TABLE IF NOT EXISTS cases (
    application_id        uuid PRIMARY KEY,
    case_number           text NOT NULL,
    candidate_id          uuid NOT NULL,
    confirmation_point_id text NOT NULL,
    window_id             uuid NOT NULL,
    status                text NOT NULL,
    stage                 text,
    submission_number     integer NOT NULL,
    submitted_at          timestamptz NOT NULL,
    first_submitted_at    timestamptz NOT NULL,
    waiting_since         timestamptz NOT NULL,
    stage_deadline        timestamptz,
    major_codes           text[] NOT NULL,
    route_ids             text[] NOT NULL,
    kinds                 text[] NOT NULL,
    course_count          integer NOT NULL,
    claimed_by            uuid,
    claimed_at            timestamptz,
    last_action_at        timestamptz NOT NULL,
    last_return_reason    text
);
CREATE INDEX IF NOT EXISTS cases_point_waiting
    ON cases (confirmation_point_id, status, waiting_since, application_id);
CREATE INDEX IF NOT EXISTS cases_status_waiting
    ON cases (status, waiting_since, application_id);
CREATE INDEX IF NOT EXISTS cases_status_deadline
    ON cases (status, (COALESCE(stage_deadline, 'infinity'::timestamptz)), waiting_since,
              application_id);
CREATE INDEX IF NOT EXISTS cases_status_resubmissions
    ON cases (status, (-submission_number), waiting_since, application_id);
CREATE INDEX IF NOT EXISTS cases_status_case_number ON cases (status, case_number, application_id);
CREATE INDEX IF NOT EXISTS cases_case_number ON cases (case_number text_pattern_ops);
CREATE INDEX IF NOT EXISTS cases_window ON cases (window_id);
CREATE TABLE IF NOT EXISTS held_events (
    event_id          uuid PRIMARY KEY,
    application_id    uuid NOT NULL,
    submission_number integer NOT NULL,
    event_type        text NOT NULL,
    occurred_at       timestamptz NOT NULL,
    payload           jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS held_events_case ON held_events (application_id, submission_number);
"""

# The deadline of a case's stage, from its window (NULL while the window is unknown).
_DEADLINE_SQL = """
    (SELECT CASE c.status WHEN 'awaiting_point' THEN w.point_review_close_at
                          WHEN 'awaiting_province' THEN w.province_review_close_at END
       FROM windows w WHERE w.window_id = c.window_id)
"""

_DECISION_EVENTS = frozenset(
    {
        ReviewClaimed.event_type,
        ReviewReleased.event_type,
        InitialReviewCompleted.event_type,
        ApplicationReturned.event_type,
        ApplicationApproved.event_type,
    }
)


class QueueProjection:
    """The `review_queue` projection: cases awaiting review, their claims, and the windows."""

    name = QUEUE_SCHEMA
    topics = (EXEMPTION_STREAM.topic, WINDOW_STREAM.topic, DECISION_STREAM.topic)
    ddl = _DDL

    async def apply(self, conn: Conn, envelope: EventEnvelope) -> None:
        """Apply one event inside the runner's transaction; unrelated events are ignored."""
        kind = envelope.event_type
        if kind == ApplicationSubmitted.event_type:
            await self._submitted(
                conn, ApplicationSubmitted.model_validate(envelope.payload), envelope
            )
        elif kind == ApplicationResubmitted.event_type:
            snapshot = ApplicationResubmitted.model_validate(envelope.payload)
            await self._submitted(conn, snapshot, envelope)
        elif kind == ApplicationWithdrawn.event_type:
            await self._withdrawn(
                conn, ApplicationWithdrawn.model_validate(envelope.payload), envelope
            )
        elif kind == ApplicationWindowOpened.event_type:
            await self._window_opened(
                conn, ApplicationWindowOpened.model_validate(envelope.payload)
            )
        elif kind == ApplicationWindowClosed.event_type:
            closed = ApplicationWindowClosed.model_validate(envelope.payload)
            await conn.execute(
                "UPDATE windows SET closed = true, closed_reason = $2, closed_at = $3"
                " WHERE window_id = $1 AND NOT closed",
                closed.window_id,
                closed.reason,
                envelope.occurred_at,
            )
        elif kind in _DECISION_EVENTS:
            await self._decision(conn, envelope, hold=True)

    # --- application stream ---------------------------------------------------------------

    async def _submitted(
        self,
        conn: Conn,
        snapshot: ApplicationSubmitted | ApplicationResubmitted,
        envelope: EventEnvelope,
    ) -> None:
        at = envelope.occurred_at
        changed = await conn.fetchval(
            """
            INSERT INTO cases AS c (application_id, case_number, candidate_id,
                               confirmation_point_id, window_id, status, stage, submission_number,
                               submitted_at, first_submitted_at, waiting_since, major_codes,
                               route_ids, kinds, course_count, last_action_at)
            VALUES ($1, $2, $3, $4, $5, 'awaiting_point', 'confirmation_point', $6, $7, $7, $7,
                    $8, $9, $10, $11, $7)
            ON CONFLICT (application_id) DO UPDATE SET
                case_number = EXCLUDED.case_number,
                candidate_id = EXCLUDED.candidate_id,
                confirmation_point_id = EXCLUDED.confirmation_point_id,
                window_id = EXCLUDED.window_id,
                status = 'awaiting_point', stage = 'confirmation_point',
                submission_number = EXCLUDED.submission_number,
                submitted_at = EXCLUDED.submitted_at,
                first_submitted_at = LEAST(c.first_submitted_at, EXCLUDED.first_submitted_at),
                waiting_since = EXCLUDED.waiting_since,
                major_codes = EXCLUDED.major_codes, route_ids = EXCLUDED.route_ids,
                kinds = EXCLUDED.kinds, course_count = EXCLUDED.course_count,
                claimed_by = NULL, claimed_at = NULL,
                last_action_at = EXCLUDED.last_action_at
            WHERE c.submission_number < EXCLUDED.submission_number
              AND c.status <> 'withdrawn'
            RETURNING true
            """,
            snapshot.application_id,
            snapshot.case_number,
            snapshot.candidate_id,
            snapshot.confirmation_point_id,
            snapshot.window_id,
            snapshot.submission_number,
            at,
            list(dict.fromkeys(snapshot.major_codes)),
            list(dict.fromkeys(c.route_id for c in snapshot.certificates)),
            list(dict.fromkeys(str(c.kind) for c in snapshot.certificates)),
            len(snapshot.course_codes),
        )
        if not changed:
            return
        await self._refresh_deadline(conn, snapshot.application_id)
        # Decision events that overtook this submission (another topic) apply now, in order.
        held = await conn.fetch(
            "DELETE FROM held_events WHERE application_id = $1 AND submission_number <= $2"
            " RETURNING event_id, event_type, submission_number, occurred_at, payload",
            snapshot.application_id,
            snapshot.submission_number,
        )
        for row in sorted(held, key=lambda r: r["occurred_at"]):
            if row["submission_number"] != snapshot.submission_number:
                continue
            await self._decision(
                conn,
                envelope.model_copy(
                    update={
                        "event_id": row["event_id"],
                        "event_type": row["event_type"],
                        "occurred_at": row["occurred_at"],
                        "payload": row["payload"],
                    }
                ),
                hold=False,
            )

    async def _withdrawn(
        self, conn: Conn, withdrawn: ApplicationWithdrawn, envelope: EventEnvelope
    ) -> None:
        await conn.execute(
            """
            UPDATE cases SET status = 'withdrawn', stage = NULL, stage_deadline = NULL,
                             claimed_by = NULL, claimed_at = NULL, waiting_since = $2,
                             last_action_at = $2
             WHERE application_id = $1 AND status NOT IN ('withdrawn', 'decided')
            """,
            withdrawn.application_id,
            envelope.occurred_at,
        )

    async def _window_opened(self, conn: Conn, opened: ApplicationWindowOpened) -> None:
        moments = (
            opened.opens_at,
            opened.applications_close_at,
            opened.point_review_close_at,
            opened.province_review_close_at,
            opened.results_published_at,
        )
        if not all(in_sane_range(m) for m in moments):
            # Published before dates were held to a sane range: PostgreSQL would store year 1
            # as -infinity (or refuse it) and every queue read would trip over it. The window's
            # deadlines stay unknown, as for a window not seen yet.
            log.warning(
                "ignoring a window with deadlines out of range",
                extra={"window_id": str(opened.window_id)},
            )
            return
        await conn.execute(
            """
            INSERT INTO windows (window_id, name, opens_at, applications_close_at,
                                 point_review_close_at, province_review_close_at,
                                 results_published_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7)
            ON CONFLICT (window_id) DO UPDATE SET
                name = EXCLUDED.name, opens_at = EXCLUDED.opens_at,
                applications_close_at = EXCLUDED.applications_close_at,
                point_review_close_at = EXCLUDED.point_review_close_at,
                province_review_close_at = EXCLUDED.province_review_close_at,
                results_published_at = EXCLUDED.results_published_at
            """,
            opened.window_id,
            opened.name,
            opened.opens_at,
            opened.applications_close_at,
            opened.point_review_close_at,
            opened.province_review_close_at,
            opened.results_published_at,
        )
        await conn.execute(
            f"UPDATE cases c SET stage_deadline = {_DEADLINE_SQL} WHERE c.window_id = $1",
            opened.window_id,
        )

    async def _refresh_deadline(self, conn: Conn, application_id: UUID) -> None:
        await conn.execute(
            f"UPDATE cases c SET stage_deadline = {_DEADLINE_SQL} WHERE c.application_id = $1",
            application_id,
        )

    # --- review's decision stream --------------------------------------------------------

    async def _decision(self, conn: Conn, envelope: EventEnvelope, *, hold: bool) -> None:
        payload = envelope.payload
        application_id = UUID(str(payload["application_id"]))
        number = int(payload["submission_number"])
        current = await conn.fetchval(
            "SELECT submission_number FROM cases WHERE application_id = $1 FOR UPDATE",
            application_id,
        )
        if current is None or current < number:
            if hold:
                await conn.execute(
                    "INSERT INTO held_events (event_id, application_id, submission_number,"
                    " event_type, occurred_at, payload) VALUES ($1, $2, $3, $4, $5, $6)"
                    " ON CONFLICT DO NOTHING",
                    envelope.event_id,
                    application_id,
                    number,
                    envelope.event_type,
                    envelope.occurred_at,
                    payload,
                )
            return
        if current > number:
            # Stale: about a submission the case has moved past. One exception: the return
            # that led to the current submission may arrive after it (the topics are consumed
            # independently, and a rebuild reads them in another interleaving); its reason is
            # still the case's last return reason, whichever arrived first.
            if envelope.event_type == ApplicationReturned.event_type and current == number + 1:
                await conn.execute(
                    "UPDATE cases SET last_return_reason = $2 WHERE application_id = $1",
                    application_id,
                    ApplicationReturned.model_validate(payload).reason,
                )
            return
        at = envelope.occurred_at
        kind = envelope.event_type
        if kind == ReviewClaimed.event_type:
            claimed = ReviewClaimed.model_validate(payload)
            await conn.execute(
                "UPDATE cases SET claimed_by = $2, claimed_at = $3, last_action_at = $3"
                " WHERE application_id = $1 AND status = $4"
                " AND (claimed_at IS NULL OR claimed_at <= $3)",
                application_id,
                claimed.reviewer_id,
                at,
                _awaiting(claimed.stage),
            )
        elif kind == ReviewReleased.event_type:
            released = ReviewReleased.model_validate(payload)
            await conn.execute(
                "UPDATE cases SET claimed_by = NULL, claimed_at = NULL, last_action_at = $3"
                " WHERE application_id = $1 AND status = $4 AND claimed_by = $2"
                " AND claimed_at <= $3",
                application_id,
                released.reviewer_id,
                at,
                _awaiting(released.stage),
            )
        elif kind == InitialReviewCompleted.event_type:
            InitialReviewCompleted.model_validate(payload)
            await self._to_province(conn, application_id, at)
        elif kind == ApplicationApproved.event_type:
            approved = ApplicationApproved.model_validate(payload)
            if approved.final:
                await conn.execute(
                    """
                    UPDATE cases SET status = 'decided', stage = NULL, stage_deadline = NULL,
                                     claimed_by = NULL, claimed_at = NULL, waiting_since = $2,
                                     last_action_at = $2
                     WHERE application_id = $1
                       AND status IN ('awaiting_point', 'awaiting_province')
                    """,
                    application_id,
                    at,
                )
            elif approved.stage == ReviewStage.CONFIRMATION_POINT:
                await self._to_province(conn, application_id, at)
        elif kind == ApplicationReturned.event_type:
            returned = ApplicationReturned.model_validate(payload)
            await conn.execute(
                """
                UPDATE cases SET status = 'returned', stage = $3, stage_deadline = NULL,
                                 claimed_by = NULL, claimed_at = NULL, waiting_since = $2,
                                 last_action_at = $2, last_return_reason = $4
                 WHERE application_id = $1
                   AND status IN ('awaiting_point', 'awaiting_province')
                """,
                application_id,
                at,
                str(returned.stage),
                returned.reason,
            )

    async def _to_province(self, conn: Conn, application_id: UUID, at: datetime) -> None:
        moved = await conn.fetchval(
            """
            UPDATE cases SET status = 'awaiting_province', stage = 'provincial',
                             claimed_by = NULL, claimed_at = NULL, waiting_since = $2,
                             last_action_at = $2
             WHERE application_id = $1 AND status = 'awaiting_point'
            RETURNING true
            """,
            application_id,
            at,
        )
        if moved:
            await self._refresh_deadline(conn, application_id)


def _awaiting(stage: ReviewStage) -> str:
    if stage == ReviewStage.CONFIRMATION_POINT:
        return CaseStatus.AWAITING_POINT.value
    return CaseStatus.AWAITING_PROVINCE.value


# --- queries -------------------------------------------------------------------------------


class InvalidQuery(ValueError):
    """A queue query the caller should answer with 400 (bad page size, cursor or filter)."""


@dataclass(frozen=True)
class QueueScope:
    """Whose queue: a point reviewer's confirmation points (初审) or the province (复审)."""

    points: frozenset[str] | None

    @classmethod
    def for_points(cls, points: Sequence[str] | frozenset[str]) -> QueueScope:
        if not points:
            raise InvalidQuery("至少需要一个确认点")
        return cls(frozenset(points))

    @classmethod
    def province(cls) -> QueueScope:
        return cls(None)

    @property
    def stage(self) -> ReviewStage:
        return ReviewStage.CONFIRMATION_POINT if self.points is not None else ReviewStage.PROVINCIAL

    @property
    def working_status(self) -> CaseStatus:
        """The status this scope works on (its default queue)."""
        return (
            CaseStatus.AWAITING_POINT if self.points is not None else CaseStatus.AWAITING_PROVINCE
        )


ClaimFilter = Literal["any", "claimed", "unclaimed", "mine"]


@dataclass(frozen=True)
class QueueFilters:
    """Filters of the queue page; `statuses=None` means the scope's working status."""

    statuses: tuple[CaseStatus, ...] | None = None
    major_code: str | None = None
    route_id: str | None = None
    overdue: bool | None = None
    claim: ClaimFilter = "any"
    reviewer_id: UUID | None = None  # required for claim="mine"
    case_number_prefix: str | None = None


class QueueSort(StrEnum):
    WAITING = "waiting"  # 等待最久优先 (default)
    DEADLINE = "deadline"  # 截止时间最近优先
    CASE_NUMBER = "case_number"  # 办件编号
    RESUBMISSIONS = "resubmissions"  # 重新申请次数最多优先


@dataclass(frozen=True)
class QueuePageRequest:
    """Keyset paging (`after` = a previous page's `next_cursor`) or offset paging."""

    size: int = 20
    after: str | None = None
    offset: int = 0


@dataclass(frozen=True)
class QueueRow:
    application_id: UUID
    case_number: str
    candidate_id: UUID
    confirmation_point_id: str
    window_id: UUID
    status: CaseStatus
    stage: str | None
    submission_number: int
    resubmissions: int
    submitted_at: datetime
    first_submitted_at: datetime
    waiting_since: datetime
    days_waiting: int
    deadline: datetime | None
    overdue: bool
    major_codes: list[str]
    route_ids: list[str]
    kinds: list[str]
    course_count: int
    claimed_by: UUID | None
    claimed_at: datetime | None
    claim_expires_at: datetime | None
    claim_live: bool
    last_action_at: datetime
    last_return_reason: str | None


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    next_cursor: str | None  # None on the last page


@dataclass(frozen=True)
class QueueCounts:
    by_status: dict[CaseStatus, int] = field(default_factory=dict)
    overdue: int = 0  # of the scope's working status
    claimed: int = 0  # live claims on the scope's working status


# Sort keys: (column, SQL type, expression template applied to column and cursor value alike);
# every key ascends so the keyset condition is one row comparison an index can serve.
_SORT_KEYS: dict[QueueSort, tuple[tuple[str, str, str], ...]] = {
    QueueSort.WAITING: (
        ("waiting_since", "timestamptz", "{}"),
        ("application_id", "uuid", "{}"),
    ),
    QueueSort.DEADLINE: (
        ("stage_deadline", "timestamptz", "COALESCE({}, 'infinity'::timestamptz)"),
        ("waiting_since", "timestamptz", "{}"),
        ("application_id", "uuid", "{}"),
    ),
    QueueSort.CASE_NUMBER: (
        ("case_number", "text", "{}"),
        ("application_id", "uuid", "{}"),
    ),
    QueueSort.RESUBMISSIONS: (
        ("submission_number", "integer", "(-{})"),
        ("waiting_since", "timestamptz", "{}"),
        ("application_id", "uuid", "{}"),
    ),
}

_COLUMNS = """application_id, case_number, candidate_id, confirmation_point_id, window_id, status,
    stage, submission_number, submitted_at, first_submitted_at, waiting_since, stage_deadline,
    major_codes, route_ids, kinds, course_count, claimed_by, claimed_at, last_action_at,
    last_return_reason"""


class _Params:
    def __init__(self) -> None:
        self.values: list[Any] = []

    def add(self, value: Any, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{'::' + cast if cast else ''}"


def _scope_where(scope: QueueScope, params: _Params) -> list[str]:
    if scope.points is None:
        return []
    return [_in("confirmation_point_id", sorted(scope.points), "text", params)]


def _in(column: str, values: list[str], cast: str, params: _Params) -> str:
    # One value as `=`, not `= ANY(array)`: only then can an index scan deliver the sort order.
    if len(values) == 1:
        return f"{column} = {params.add(values[0], cast)}"
    return f"{column} = ANY({params.add(values, cast + '[]')})"


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


async def list_queue(
    conn: Conn,
    scope: QueueScope,
    filters: QueueFilters | None = None,
    sort: QueueSort = QueueSort.WAITING,
    page: QueuePageRequest | None = None,
    *,
    now: datetime,
    lease: timedelta = DEFAULT_LEASE,
) -> QueuePage:
    """One page of the queue for `scope`, filtered and sorted; raises InvalidQuery on bad input."""
    filters = filters or QueueFilters()
    page = page or QueuePageRequest()
    if not 1 <= page.size <= MAX_PAGE_SIZE:
        raise InvalidQuery(f"每页条数须在 1 到 {MAX_PAGE_SIZE} 之间")
    if page.offset < 0 or (page.offset and page.after):
        raise InvalidQuery("分页参数无效")
    params = _Params()
    where = _scope_where(scope, params)
    statuses = filters.statuses or (scope.working_status,)
    where.append(_in("status", sorted({str(s) for s in statuses}), "text", params))
    if filters.major_code:
        where.append(f"major_codes @> ARRAY[{params.add(filters.major_code, 'text')}]")
    if filters.route_id:
        where.append(f"route_ids @> ARRAY[{params.add(filters.route_id, 'text')}]")
    if filters.overdue is not None:
        now_p = params.add(now, "timestamptz")
        where.append(
            f"stage_deadline < {now_p}"
            if filters.overdue
            else f"(stage_deadline IS NULL OR stage_deadline >= {now_p})"
        )
    if filters.claim != "any":
        live_after = params.add(now - lease, "timestamptz")
        live = f"(claimed_by IS NOT NULL AND claimed_at > {live_after})"
        if filters.claim == "claimed":
            where.append(live)
        elif filters.claim == "unclaimed":
            where.append(f"NOT {live}")
        elif filters.claim == "mine":
            if filters.reviewer_id is None:
                raise InvalidQuery("筛选“我领取的”需要审核人")
            where.append(f"{live} AND claimed_by = {params.add(filters.reviewer_id, 'uuid')}")
        else:
            raise InvalidQuery("领取状态筛选无效")
    if filters.case_number_prefix:
        prefix = filters.case_number_prefix.strip().upper()
        where.append(f"case_number LIKE {params.add(_like_prefix(prefix), 'text')}")

    keys = _SORT_KEYS[sort]
    if page.after:
        values = _decode_cursor(page.after, sort)
        left = ", ".join(tpl.format(col) for col, _, tpl in keys)
        right = ", ".join(
            tpl.format(params.add(v, cast)) for (_, cast, tpl), v in zip(keys, values, strict=True)
        )
        where.append(f"({left}) > ({right})")
    order = ", ".join(tpl.format(col) for col, _, tpl in keys)
    sql = f"SELECT {_COLUMNS} FROM cases WHERE {' AND '.join(where)} ORDER BY {order}"
    sql += f" LIMIT {params.add(page.size + 1, 'integer')}"
    if page.offset:
        sql += f" OFFSET {params.add(page.offset, 'integer')}"
    records = await conn.fetch(sql, *params.values)
    more = len(records) > page.size
    records = records[: page.size]
    rows = [_row(r, now, lease) for r in records]
    cursor = _encode_cursor(sort, [records[-1][col] for col, _, _ in keys]) if more else None
    return QueuePage(rows=rows, next_cursor=cursor)


async def counts(
    conn: Conn, scope: QueueScope, now: datetime, lease: timedelta = DEFAULT_LEASE
) -> QueueCounts:
    """Cases per status in `scope`, and how many of its working status are overdue or claimed."""
    params = _Params()
    where = _scope_where(scope, params)
    working = params.add(scope.working_status.value, "text")
    now_p = params.add(now, "timestamptz")
    live_after = params.add(now - lease, "timestamptz")
    records = await conn.fetch(
        f"""
        SELECT status, count(*) AS n,
               count(*) FILTER (WHERE status = {working} AND stage_deadline < {now_p}) AS overdue,
               count(*) FILTER (WHERE status = {working} AND claimed_by IS NOT NULL
                                  AND claimed_at > {live_after}) AS claimed
          FROM cases {"WHERE " + " AND ".join(where) if where else ""}
         GROUP BY status
        """,
        *params.values,
    )
    by_status = {s: 0 for s in CaseStatus}
    for r in records:
        by_status[CaseStatus(r["status"])] = r["n"]
    return QueueCounts(
        by_status=by_status,
        overdue=sum(r["overdue"] for r in records),
        claimed=sum(r["claimed"] for r in records),
    )


def _deadline(value: datetime | None) -> datetime | None:
    """A stored stage deadline, or None when the row holds none a reader can use (an infinity
    comes back from PostgreSQL as a naive datetime)."""
    if value is None or value.tzinfo is None or not in_sane_range(value):
        return None
    return value


def _row(r: Any, now: datetime, lease: timedelta) -> QueueRow:
    deadline = _deadline(r["stage_deadline"])
    claimed_at = r["claimed_at"]
    expires = claimed_at + lease if claimed_at is not None else None
    return QueueRow(
        application_id=r["application_id"],
        case_number=r["case_number"],
        candidate_id=r["candidate_id"],
        confirmation_point_id=r["confirmation_point_id"],
        window_id=r["window_id"],
        status=CaseStatus(r["status"]),
        stage=r["stage"],
        submission_number=r["submission_number"],
        resubmissions=r["submission_number"] - 1,
        submitted_at=r["submitted_at"],
        first_submitted_at=r["first_submitted_at"],
        waiting_since=r["waiting_since"],
        days_waiting=max((now - r["waiting_since"]).days, 0),
        deadline=deadline,
        overdue=deadline is not None and deadline < now,
        major_codes=list(r["major_codes"]),
        route_ids=list(r["route_ids"]),
        kinds=list(r["kinds"]),
        course_count=r["course_count"],
        claimed_by=r["claimed_by"],
        claimed_at=claimed_at,
        claim_expires_at=expires,
        claim_live=r["claimed_by"] is not None and expires is not None and expires > now,
        last_action_at=r["last_action_at"],
        last_return_reason=r["last_return_reason"],
    )


def _encode_cursor(sort: QueueSort, values: list[Any]) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    plain = [str(v) if isinstance(v, UUID) else v for v in plain]
    raw = json.dumps([sort.value, *plain], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str, sort: QueueSort) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
        keys = _SORT_KEYS[sort]
        if not isinstance(data, list) or data[0] != sort.value or len(data) != len(keys) + 1:
            raise InvalidQuery("分页游标无效")
        values: list[Any] = []
        for (_, cast, _), v in zip(keys, data[1:], strict=True):
            if v is None:
                values.append(None)
            elif cast == "timestamptz":
                values.append(datetime.fromisoformat(v))
            elif cast == "uuid":
                values.append(UUID(v))
            elif cast == "integer":
                values.append(int(v))
            else:
                values.append(str(v))
        return values
    except (ValueError, TypeError, binascii.Error, IndexError, KeyError) as exc:
        if isinstance(exc, InvalidQuery):
            raise
        raise InvalidQuery("分页游标无效") from exc
