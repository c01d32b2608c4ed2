"""The review queue projection and its queries, on a real PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from contracts.application import WINDOW_STREAM
from contracts.review import DECISION_STREAM
from eventkit.envelope import EventEnvelope
from eventkit.projection import use_schema
from review_service.adapters.queue import (
    QUEUE_SCHEMA,
    CaseStatus,
    InvalidQuery,
    QueueCounts,
    QueueFilters,
    QueuePage,
    QueuePageRequest,
    QueueRow,
    QueueScope,
    QueueSort,
    _decode_cursor,
    _encode_cursor,
    counts,
    list_queue,
)

NOW = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
POINT_A, POINT_B, POINT_C = "140105", "140106", "140107"
REVIEWER, OTHER = uuid.uuid4(), uuid.uuid4()
DECISIONS = [{"course_code": "00012", "major_code": "580401", "outcome": "granted"}]
DECISION = DECISION_STREAM.topic
POINTS = QueueScope.for_points([POINT_A])
PROVINCE = QueueScope.province()


class World:
    """Builds and applies events for cases in one window; reads the queue back."""

    def __init__(self, pool: asyncpg.Pool, apply: Callable[..., Awaitable[None]], ev: Any):
        self.pool, self.apply, self.ev = pool, apply, ev
        self.window_id = uuid.uuid4()
        self.serial = 0
        self.cases: dict[uuid.UUID, dict[str, Any]] = {}

    async def open_window(self, *, point_close: datetime, province_close: datetime) -> None:
        payload = self.ev.window(
            self.window_id,
            point_review_close_at=point_close,
            province_review_close_at=province_close,
        )
        await self.apply(
            self.ev.envelope("ApplicationWindowOpened", payload, stream=WINDOW_STREAM.topic)
        )

    async def submit(
        self,
        *,
        at: datetime,
        point: str = POINT_A,
        number: int = 1,
        application_id: uuid.UUID | None = None,
        case_number: str | None = None,
        **snapshot_args: Any,
    ) -> uuid.UUID:
        application_id = application_id or uuid.uuid4()
        if case_number is None:
            known = self.cases.get(application_id)
            if known:
                case_number = known["case_number"]
            else:
                self.serial += 1
                case_number = f"MK2026{self.serial:06d}"
        payload = self.ev.snapshot(
            application_id=application_id,
            window_id=self.window_id,
            case_number=case_number,
            point=point,
            submission_number=number,
            **snapshot_args,
        )
        kind = "ApplicationSubmitted" if number == 1 else "ApplicationResubmitted"
        self.cases[application_id] = payload
        await self.apply(self.ev.envelope(kind, payload, occurred_at=at))
        return application_id

    def decision(
        self, kind: str, application_id: uuid.UUID, *, at: datetime, number: int = 1, **extra: Any
    ) -> EventEnvelope:
        case = self.cases[application_id]
        payload: dict[str, Any] = {
            "application_id": str(application_id),
            "case_number": case["case_number"],
            "submission_number": number,
            **extra,
        }
        if kind in (
            "ReviewClaimed",
            "ReviewReleased",
            "ApplicationReturned",
            "ApplicationApproved",
        ):
            payload.setdefault("stage", "confirmation_point")
            payload.setdefault("reviewer_id", str(REVIEWER))
        if kind == "ReviewClaimed":
            payload.setdefault("confirmation_point_id", case["confirmation_point_id"])
        if kind == "ReviewReleased":
            payload.setdefault("lapsed", False)
        if kind == "InitialReviewCompleted":
            payload.setdefault("confirmation_point_id", case["confirmation_point_id"])
            payload.setdefault("reviewer_id", str(REVIEWER))
            payload.setdefault("decisions", DECISIONS)
        if kind == "ApplicationReturned":
            payload.setdefault("reason", "学历证书照片不清晰，请重新上传")
        if kind == "ApplicationApproved":
            payload.setdefault("decisions", DECISIONS)
            payload.setdefault("final", True)
        return self.ev.envelope(kind, payload, stream=DECISION, occurred_at=at)

    async def act(self, kind: str, application_id: uuid.UUID, **kwargs: Any) -> EventEnvelope:
        env = self.decision(kind, application_id, **kwargs)
        await self.apply(env)
        return env

    async def queue(
        self,
        scope: QueueScope = POINTS,
        filters: QueueFilters | None = None,
        sort: QueueSort = QueueSort.WAITING,
        page: QueuePageRequest | None = None,
        *,
        now: datetime = NOW,
        lease: timedelta = timedelta(minutes=30),
    ) -> QueuePage:
        async with self.pool.acquire() as conn, conn.transaction():
            await use_schema(conn, QUEUE_SCHEMA)
            return await list_queue(conn, scope, filters, sort, page, now=now, lease=lease)

    async def ids(self, *args: Any, **kwargs: Any) -> list[uuid.UUID]:
        page = await self.queue(*args, **kwargs)
        return [r.application_id for r in page.rows]

    async def row(self, application_id: uuid.UUID, **kwargs: Any) -> QueueRow:
        every = QueueFilters(statuses=tuple(CaseStatus))
        page = await self.queue(PROVINCE, every, page=QueuePageRequest(size=100), **kwargs)
        (row,) = [r for r in page.rows if r.application_id == application_id]
        return row

    async def counts(self, scope: QueueScope, *, now: datetime = NOW) -> QueueCounts:
        async with self.pool.acquire() as conn, conn.transaction():
            await use_schema(conn, QUEUE_SCHEMA)
            return await counts(conn, scope, now)


@pytest.fixture
async def world(queue_pool: asyncpg.Pool, apply_queue: Any, review_events: Any) -> World:
    w = World(queue_pool, apply_queue, review_events)
    await w.open_window(
        point_close=NOW + timedelta(days=5), province_close=NOW + timedelta(days=20)
    )
    return w


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


# --- pure ---------------------------------------------------------------------------------------


@pytest.mark.unit
def test_cursor_round_trips_and_rejects_garbage() -> None:
    values = [None, datetime(2026, 3, 1, tzinfo=UTC), uuid.uuid4()]
    cursor = _encode_cursor(QueueSort.DEADLINE, values)
    assert _decode_cursor(cursor, QueueSort.DEADLINE) == values
    with pytest.raises(InvalidQuery):
        _decode_cursor(cursor, QueueSort.WAITING)  # a cursor of another sort
    for garbage in ("", "!!!", "bm90IGpzb24", _encode_cursor(QueueSort.WAITING, [1, "x"])):
        with pytest.raises(InvalidQuery):
            _decode_cursor(garbage, QueueSort.WAITING)


@pytest.mark.unit
async def test_bad_page_and_scope_requests_are_refused_before_sql() -> None:
    conn: Any = None  # never reached
    for page in (QueuePageRequest(size=0), QueuePageRequest(size=101), QueuePageRequest(offset=-1)):
        with pytest.raises(InvalidQuery):
            await list_queue(conn, POINTS, None, QueueSort.WAITING, page, now=NOW)
    with pytest.raises(InvalidQuery):
        await list_queue(
            conn, POINTS, None, QueueSort.WAITING, QueuePageRequest(after="x", offset=5), now=NOW
        )
    with pytest.raises(InvalidQuery):
        QueueScope.for_points([])
    assert POINTS.working_status is CaseStatus.AWAITING_POINT
    assert PROVINCE.working_status is CaseStatus.AWAITING_PROVINCE


# --- events ---------------------------------------------------------------------------------------


@pytest.mark.integration
async def test_submission_enters_the_point_queue_with_its_snapshot(world: World) -> None:
    app = await world.submit(
        at=ago(days=3, hours=1),
        major_codes=("580401", "030101K"),
        route_id="CET4-NEW",
        courses=("00012", "00015"),
    )
    (row,) = (await world.queue()).rows
    assert row.application_id == app
    assert row.status is CaseStatus.AWAITING_POINT and row.stage == "confirmation_point"
    assert row.case_number == "MK2026000001" and row.confirmation_point_id == POINT_A
    assert row.major_codes == ["580401", "030101K"]
    assert row.route_ids == ["CET4-NEW"] and row.kinds == ["cet4_or_above"]
    assert row.course_count == 2
    assert row.submission_number == 1 and row.resubmissions == 0
    assert row.submitted_at == row.first_submitted_at == row.waiting_since == ago(days=3, hours=1)
    assert row.days_waiting == 3
    assert row.deadline == NOW + timedelta(days=5) and not row.overdue
    assert row.claimed_by is None and not row.claim_live
    assert row.last_action_at == ago(days=3, hours=1)
    assert await world.ids(PROVINCE) == []  # not the province's yet


@pytest.mark.integration
async def test_window_known_after_the_case_fills_the_deadline_and_closing_is_kept(
    world: World, queue_pool: asyncpg.Pool
) -> None:
    world.window_id = uuid.uuid4()  # a window the projection has not seen
    app = await world.submit(at=ago(days=1))
    assert (await world.row(app)).deadline is None
    await world.open_window(point_close=ago(hours=1), province_close=NOW + timedelta(days=9))
    row = await world.row(app)
    assert row.deadline == ago(hours=1) and row.overdue
    closed = {"window_id": str(world.window_id), "reason": "政策调整，本次申请提前结束"}
    env = world.ev.envelope("ApplicationWindowClosed", closed, stream=WINDOW_STREAM.topic)
    await world.apply(env, env)
    flag = await queue_pool.fetchval(
        f"SELECT closed FROM {QUEUE_SCHEMA}.windows WHERE window_id = $1", world.window_id
    )
    assert flag is True


@pytest.mark.integration
async def test_claim_release_and_lease(world: World) -> None:
    app = await world.submit(at=ago(days=2))
    await world.act("ReviewClaimed", app, at=ago(minutes=10))
    row = await world.row(app)
    assert row.claimed_by == REVIEWER and row.claimed_at == ago(minutes=10)
    assert row.claim_live and row.claim_expires_at == ago(minutes=10) + timedelta(minutes=30)
    assert row.last_action_at == ago(minutes=10)
    assert not (await world.row(app, now=NOW + timedelta(minutes=21))).claim_live  # lapsed
    assert (
        await world.row(app, lease=timedelta(hours=1), now=NOW + timedelta(minutes=21))
    ).claim_live
    # someone else's release does not end my claim; my own does
    await world.act("ReviewReleased", app, at=ago(minutes=5), reviewer_id=str(OTHER))
    assert (await world.row(app)).claimed_by == REVIEWER
    await world.act("ReviewReleased", app, at=ago(minutes=4), lapsed=True)
    row = await world.row(app)
    assert row.claimed_by is None and row.claimed_at is None and not row.claim_live
    # a provincial claim does not apply to a case at its point
    await world.act("ReviewClaimed", app, at=ago(minutes=3), stage="provincial")
    assert (await world.row(app)).claimed_by is None


@pytest.mark.integration
async def test_initial_review_moves_the_case_to_the_province(world: World) -> None:
    app = await world.submit(at=ago(days=4))
    await world.act("ReviewClaimed", app, at=ago(hours=2))
    await world.act("InitialReviewCompleted", app, at=ago(hours=1))
    row = await world.row(app)
    assert row.status is CaseStatus.AWAITING_PROVINCE and row.stage == "provincial"
    assert row.claimed_by is None and row.waiting_since == ago(hours=1) and row.days_waiting == 0
    assert row.deadline == NOW + timedelta(days=20)
    assert await world.ids() == [] and await world.ids(PROVINCE) == [app]
    await world.act(
        "ReviewClaimed", app, at=ago(minutes=1), stage="provincial", reviewer_id=str(OTHER)
    )
    assert (await world.row(app)).claimed_by == OTHER


@pytest.mark.integration
async def test_point_approval_passes_upward_and_final_approval_decides(world: World) -> None:
    app = await world.submit(at=ago(days=4))
    await world.act("ApplicationApproved", app, at=ago(hours=3), final=False)
    assert (await world.row(app)).status is CaseStatus.AWAITING_PROVINCE
    await world.act("ReviewClaimed", app, at=ago(hours=2), stage="provincial")
    await world.act("ApplicationApproved", app, at=ago(hours=1), stage="provincial", final=True)
    row = await world.row(app)
    assert row.status is CaseStatus.DECIDED and row.stage is None
    assert row.claimed_by is None and row.deadline is None and not row.overdue
    # nothing reopens a decided case: not a late claim, not a withdrawal
    await world.act("ReviewClaimed", app, at=ago(minutes=1), stage="provincial")
    await world.apply(world.ev.envelope("ApplicationWithdrawn", _withdrawal(world, app)))
    row = await world.row(app)
    assert row.status is CaseStatus.DECIDED and row.claimed_by is None


def _withdrawal(world: World, app: uuid.UUID) -> dict[str, Any]:
    case = world.cases[app]
    return {
        "application_id": str(app),
        "candidate_id": case["candidate_id"],
        "case_number": case["case_number"],
        "reason": "证书照片有误，重新准备后再申请",
    }


@pytest.mark.integration
async def test_return_then_resubmission_counts_the_round(world: World) -> None:
    app = await world.submit(at=ago(days=6))
    await world.act("ApplicationReturned", app, at=ago(days=5))
    row = await world.row(app)
    assert row.status is CaseStatus.RETURNED and row.stage == "confirmation_point"
    assert row.last_return_reason == "学历证书照片不清晰，请重新上传" and row.deadline is None
    assert await world.ids() == []
    await world.submit(at=ago(days=1), application_id=app, number=2, route_id="DEGREE-SAME-NAME")
    row = await world.row(app)
    assert row.status is CaseStatus.AWAITING_POINT and row.submission_number == 2
    assert row.resubmissions == 1 and row.route_ids == ["DEGREE-SAME-NAME"]
    assert row.first_submitted_at == ago(days=6) and row.submitted_at == ago(days=1)
    assert row.days_waiting == 1 and row.last_return_reason == "学历证书照片不清晰，请重新上传"
    assert await world.ids() == [app]


@pytest.mark.integration
async def test_withdrawal_takes_the_case_out_of_the_queue(world: World) -> None:
    app = await world.submit(at=ago(days=2))
    await world.act("ReviewClaimed", app, at=ago(hours=1))
    await world.apply(world.ev.envelope("ApplicationWithdrawn", _withdrawal(world, app)))
    row = await world.row(app)
    assert row.status is CaseStatus.WITHDRAWN and row.claimed_by is None
    assert await world.ids() == []
    # a withdrawn draft that was never submitted leaves no trace
    draft = uuid.uuid4()
    world.cases[draft] = {**world.cases[app], "application_id": str(draft)}
    await world.apply(world.ev.envelope("ApplicationWithdrawn", _withdrawal(world, draft)))
    page = await world.queue(PROVINCE, QueueFilters(statuses=tuple(CaseStatus)))
    assert [r.application_id for r in page.rows] == [app]


# --- redelivery and stale events ------------------------------------------------------------------


@pytest.mark.integration
async def test_redelivered_and_stale_events_do_not_regress_a_case(world: World) -> None:
    app = await world.submit(at=ago(days=6))
    first = world.ev.envelope("ApplicationSubmitted", world.cases[app], occurred_at=ago(days=6))
    await world.act("ReviewClaimed", app, at=ago(days=5))
    await world.act("InitialReviewCompleted", app, at=ago(days=4))
    # the first submission again, under a new event id: still at the province
    await world.apply(first)
    assert (await world.row(app)).status is CaseStatus.AWAITING_PROVINCE
    completed = await world.act("InitialReviewCompleted", app, at=ago(days=4))
    await world.apply(completed)
    assert (await world.row(app)).waiting_since == ago(days=4)
    returned = await world.act("ApplicationReturned", app, at=ago(days=3), stage="provincial")
    await world.submit(at=ago(days=1), application_id=app, number=2)
    # late events about submission 1 are ignored by submission 2
    await world.apply(first, returned, completed)
    await world.apply(world.decision("ApplicationApproved", app, at=ago(hours=1), number=1))
    await world.apply(world.decision("ReviewClaimed", app, at=ago(hours=1), number=1))
    row = await world.row(app)
    assert row.status is CaseStatus.AWAITING_POINT and row.submission_number == 2
    assert row.claimed_by is None and row.first_submitted_at == ago(days=6)
    # a claim older than the current one does not replace it
    await world.act("ReviewClaimed", app, at=ago(minutes=5), number=2)
    await world.act("ReviewClaimed", app, at=ago(minutes=9), number=2, reviewer_id=str(OTHER))
    assert (await world.row(app)).claimed_by == REVIEWER


@pytest.mark.integration
async def test_decisions_that_overtake_their_submission_are_held_until_it_arrives(
    world: World, queue_pool: asyncpg.Pool
) -> None:
    app = uuid.uuid4()
    world.cases[app] = {"case_number": "MK2026999999", "confirmation_point_id": POINT_A}
    claimed = world.decision("ReviewClaimed", app, at=ago(hours=2))
    completed = world.decision("InitialReviewCompleted", app, at=ago(hours=1))
    await world.apply(completed, claimed, claimed)  # out of order and twice
    assert await world.ids(PROVINCE, QueueFilters(statuses=tuple(CaseStatus))) == []
    await world.submit(at=ago(days=2), application_id=app, case_number="MK2026999999")
    row = await world.row(app)
    assert row.status is CaseStatus.AWAITING_PROVINCE and row.claimed_by is None
    assert row.waiting_since == ago(hours=1)
    held = await queue_pool.fetchval(f"SELECT count(*) FROM {QUEUE_SCHEMA}.held_events")
    assert held == 0
    # a claim on submission 2 before the resubmission arrives waits for it too
    await world.act("ApplicationReturned", app, at=ago(minutes=50), stage="provincial")
    await world.act("ReviewClaimed", app, at=ago(minutes=5), number=2)
    assert (await world.row(app)).status is CaseStatus.RETURNED
    await world.submit(at=ago(minutes=10), application_id=app, number=2)
    row = await world.row(app)
    assert row.status is CaseStatus.AWAITING_POINT and row.claimed_by == REVIEWER


@pytest.mark.integration
async def test_the_last_return_reason_does_not_depend_on_which_topic_was_read_first(
    world: World,
) -> None:
    # the order a live consumer sees: submitted, returned, resubmitted, returned, resubmitted
    live = await world.submit(at=ago(days=9))
    await world.act("ApplicationReturned", live, at=ago(days=8), reason="原因一")
    await world.submit(at=ago(days=7), application_id=live, number=2)
    await world.act("ApplicationReturned", live, at=ago(days=6), number=2, reason="原因二")
    await world.submit(at=ago(days=5), application_id=live, number=3)
    # a rebuild may read the whole exemption topic before the decision topic, or mix them
    for order in ("returns_last", "first_return_late", "returns_reversed"):
        app = await world.submit(at=ago(days=9))
        first = world.decision("ApplicationReturned", app, at=ago(days=8), reason="原因一")
        second = world.decision("ApplicationReturned", app, at=ago(days=6), number=2,
                                reason="原因二")  # fmt: skip
        if order == "first_return_late":
            await world.submit(at=ago(days=7), application_id=app, number=2)
            await world.apply(first)
            await world.apply(second)
            await world.submit(at=ago(days=5), application_id=app, number=3)
        else:
            await world.submit(at=ago(days=7), application_id=app, number=2)
            await world.submit(at=ago(days=5), application_id=app, number=3)
            returns = (first, second) if order == "returns_last" else (second, first)
            await world.apply(*returns)
        row, expected = await world.row(app), await world.row(live)
        assert row.last_return_reason == expected.last_return_reason == "原因二", order
        assert (row.status, row.submission_number, row.waiting_since) == (
            expected.status, expected.submission_number, expected.waiting_since
        ), order  # fmt: skip


# --- filters, sorts, paging, scope ----------------------------------------------------------------


@pytest.fixture
async def mixed(world: World) -> dict[str, uuid.UUID]:
    """Six cases at point A, one at B, one at C, in various states."""
    cases = {
        "old": await world.submit(at=ago(days=9), major_codes=("030101K",)),
        "claimed": await world.submit(at=ago(days=7)),
        "mine": await world.submit(at=ago(days=5), route_id="DEGREE-SAME-NAME"),
        "resub": await world.submit(at=ago(days=8)),
        "new": await world.submit(at=ago(hours=5)),
        "returned": await world.submit(at=ago(days=6)),
        "b": await world.submit(at=ago(days=10), point=POINT_B),
        "c": await world.submit(at=ago(days=1), point=POINT_C),
    }
    await world.act("ReviewClaimed", cases["claimed"], at=ago(minutes=20), reviewer_id=str(OTHER))
    await world.act("ReviewClaimed", cases["mine"], at=ago(minutes=10))
    await world.act("ApplicationReturned", cases["resub"], at=ago(days=4))
    await world.submit(at=ago(days=2), application_id=cases["resub"], number=2)
    await world.act("ApplicationReturned", cases["returned"], at=ago(days=3))
    return cases


@pytest.mark.integration
async def test_default_queue_is_the_point_waiting_longest_first(
    world: World, mixed: dict[str, uuid.UUID]
) -> None:
    m = mixed
    assert await world.ids() == [m["old"], m["claimed"], m["mine"], m["resub"], m["new"]]
    page = await world.queue()
    assert [r.days_waiting for r in page.rows] == [9, 7, 5, 2, 0]
    assert page.next_cursor is None


@pytest.mark.integration
async def test_every_filter(world: World, mixed: dict[str, uuid.UUID]) -> None:
    m = mixed

    async def ids(**kw: Any) -> list[uuid.UUID]:
        return await world.ids(POINTS, QueueFilters(**kw))

    assert await ids(statuses=(CaseStatus.RETURNED,)) == [m["returned"]]
    both = (CaseStatus.RETURNED, CaseStatus.AWAITING_POINT)
    assert set(await ids(statuses=both)) == {m[k] for k in mixed if k not in ("b", "c")}
    assert await ids(major_code="030101K") == [m["old"]]
    assert await ids(major_code="999999") == []
    assert await ids(route_id="DEGREE-SAME-NAME") == [m["mine"]]
    assert await ids(claim="claimed") == [m["claimed"], m["mine"]]
    assert await ids(claim="unclaimed") == [m["old"], m["resub"], m["new"]]
    assert await ids(claim="mine", reviewer_id=REVIEWER) == [m["mine"]]
    assert await ids(claim="mine", reviewer_id=OTHER) == [m["claimed"]]
    with pytest.raises(InvalidQuery):
        await ids(claim="mine")
    # the claim of OTHER (20 minutes ago) lapses before mine (10 minutes ago)
    later = NOW + timedelta(minutes=15)
    lapsed = await world.ids(POINTS, QueueFilters(claim="unclaimed"), now=later)
    assert m["claimed"] in lapsed and m["mine"] not in lapsed
    number = world.cases[m["new"]]["case_number"]
    assert await ids(case_number_prefix=number) == [m["new"]]
    assert await ids(case_number_prefix=number.lower()) == [m["new"]]
    assert len(await ids(case_number_prefix="MK2026")) == 5
    assert await ids(case_number_prefix="MK2026%") == []
    assert await ids(case_number_prefix="MK_026") == []
    assert await ids(overdue=True) == [] and len(await ids(overdue=False)) == 5
    later = NOW + timedelta(days=6)  # past the point deadline
    assert len(await world.ids(POINTS, QueueFilters(overdue=True), now=later)) == 5
    page = await world.queue(POINTS, now=later)
    assert all(r.overdue for r in page.rows)
    combined = QueueFilters(overdue=True, claim="unclaimed", major_code="580401")
    # by then every claim has lapsed
    expected = [m["claimed"], m["mine"], m["resub"], m["new"]]
    assert await world.ids(POINTS, combined, now=later) == expected


@pytest.mark.integration
async def test_every_sort(world: World, mixed: dict[str, uuid.UUID]) -> None:
    m = mixed
    every_point = QueueScope.for_points([POINT_A, POINT_B, POINT_C])
    assert await world.ids(every_point, sort=QueueSort.WAITING) == [
        m["b"], m["old"], m["claimed"], m["mine"], m["resub"], m["c"], m["new"]
    ]  # fmt: skip
    assert await world.ids(every_point, sort=QueueSort.CASE_NUMBER) == [
        m["old"], m["claimed"], m["mine"], m["resub"], m["new"], m["b"], m["c"]
    ]  # fmt: skip
    assert (await world.ids(every_point, sort=QueueSort.RESUBMISSIONS))[:2] == [m["resub"], m["b"]]
    # deadlines differ per window: a second window closing sooner comes first
    world.window_id = uuid.uuid4()
    await world.open_window(
        point_close=NOW + timedelta(days=1), province_close=NOW + timedelta(days=2)
    )
    soon = await world.submit(at=ago(hours=1), point=POINT_B)
    world.window_id = uuid.uuid4()  # unknown window: no deadline, sorts last
    unknown = await world.submit(at=ago(days=30), point=POINT_B)
    by_deadline = await world.ids(every_point, sort=QueueSort.DEADLINE)
    assert by_deadline[0] == soon and by_deadline[-1] == unknown
    assert by_deadline[1:-1] == [
        m["b"],
        m["old"],
        m["claimed"],
        m["mine"],
        m["resub"],
        m["c"],
        m["new"],
    ]


@pytest.mark.integration
@pytest.mark.parametrize("sort", list(QueueSort))
async def test_keyset_and_offset_paging_visit_every_case_once(
    world: World, mixed: dict[str, uuid.UUID], sort: QueueSort
) -> None:
    world.window_id = uuid.uuid4()  # some cases without a deadline, to page across NULLs
    for i in range(5):
        await world.submit(at=ago(hours=i), point=POINT_B, number=1 + i % 3)
    scope = QueueScope.for_points([POINT_A, POINT_B])
    expected = await world.ids(scope, sort=sort, page=QueuePageRequest(size=100))
    assert len(expected) == 11
    seen: list[uuid.UUID] = []
    cursor: str | None = None
    while True:
        page = await world.queue(scope, sort=sort, page=QueuePageRequest(size=3, after=cursor))
        seen += [r.application_id for r in page.rows]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    by_offset: list[uuid.UUID] = []
    for offset in range(0, 12, 4):
        by_offset += await world.ids(scope, sort=sort, page=QueuePageRequest(size=4, offset=offset))
    assert by_offset == expected
    first = await world.queue(scope, sort=sort, page=QueuePageRequest(size=3))
    other = QueueSort.CASE_NUMBER if sort == QueueSort.WAITING else QueueSort.WAITING
    with pytest.raises(InvalidQuery):  # a cursor only continues the sort it came from
        await world.queue(scope, sort=other, page=QueuePageRequest(size=3, after=first.next_cursor))


@pytest.mark.integration
async def test_a_point_reviewer_never_sees_another_points_case(
    world: World, mixed: dict[str, uuid.UUID]
) -> None:
    m = mixed
    b_number = world.cases[m["b"]]["case_number"]
    for filters in (
        None,
        QueueFilters(statuses=tuple(CaseStatus)),
        QueueFilters(case_number_prefix=b_number),
        QueueFilters(statuses=tuple(CaseStatus), claim="unclaimed", overdue=False),
    ):
        for sort in QueueSort:
            ids = await world.ids(POINTS, filters, sort, QueuePageRequest(size=100))
            assert m["b"] not in ids and m["c"] not in ids
    assert await world.ids(QueueScope.for_points([POINT_B])) == [m["b"]]
    assert await world.ids(QueueScope.for_points([POINT_B, POINT_C])) == [m["b"], m["c"]]
    counted = await world.counts(QueueScope.for_points([POINT_B]))
    assert sum(counted.by_status.values()) == 1
    # the province sees every point, at its own stage
    await world.act("InitialReviewCompleted", m["b"], at=ago(hours=1))
    await world.act("InitialReviewCompleted", m["old"], at=ago(hours=2))
    assert await world.ids(PROVINCE) == [m["old"], m["b"]]


@pytest.mark.integration
async def test_counts_per_scope(world: World, mixed: dict[str, uuid.UUID]) -> None:
    m = mixed
    await world.act("InitialReviewCompleted", m["old"], at=ago(hours=3))
    await world.act("InitialReviewCompleted", m["c"], at=ago(hours=3))
    await world.act("ReviewClaimed", m["c"], at=ago(minutes=1), stage="provincial")
    await world.apply(world.ev.envelope("ApplicationWithdrawn", _withdrawal(world, m["new"])))
    point = await world.counts(POINTS)
    assert point.by_status == {
        CaseStatus.AWAITING_POINT: 3,
        CaseStatus.AWAITING_PROVINCE: 1,
        CaseStatus.RETURNED: 1,
        CaseStatus.DECIDED: 0,
        CaseStatus.WITHDRAWN: 1,
    }
    assert point.claimed == 2 and point.overdue == 0
    later = await world.counts(POINTS, now=NOW + timedelta(days=6))
    assert later.overdue == 3 and later.claimed == 0  # both claims have lapsed
    province = await world.counts(PROVINCE)
    assert province.by_status[CaseStatus.AWAITING_POINT] == 4  # A's three and B's
    assert province.by_status[CaseStatus.AWAITING_PROVINCE] == 2
    assert province.claimed == 1 and province.overdue == 0
    assert (await world.counts(PROVINCE, now=NOW + timedelta(days=21))).overdue == 2
