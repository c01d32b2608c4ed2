"""The reviewer's queue (待审列表): one page of it with its counts, and "next case" (下一件).

Both the JSON API and the reviewer UI call these, so a filter means the same in both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from eventkit.projection import use_schema
from review_service.adapters.queue import (
    QUEUE_SCHEMA,
    InvalidQuery,
    QueueCounts,
    QueueFilters,
    QueuePage,
    QueuePageRequest,
    QueueScope,
    QueueSort,
    counts,
    list_queue,
)
from review_service.domain.access import Reviewer
from review_service.domain.case import ReviewCase
from review_service.domain.errors import ReviewError
from review_service.service_layer.cases import Cases, ConcurrentDecision

NEXT_CANDIDATES = 10  # unclaimed cases tried by "next case" before giving up


class InvalidQueueQuery(ReviewError):
    """A queue filter or page that cannot be served."""

    code = "review.invalid_query"
    status = 400
    default_message = "查询条件不正确"


class QueueEmpty(ReviewError):
    """ "下一件" found nothing to take."""

    code = "review.queue_empty"
    status = 404
    default_message = "当前没有可领取的待审申请"


def scope_of(reviewer: Reviewer) -> QueueScope:
    """Senior reviewers work the province's queue, point reviewers their points'."""
    if reviewer.is_senior:
        return QueueScope.province()
    if not reviewer.points:
        raise InvalidQueueQuery("a point reviewer without points", "您的账号未绑定免考确认点")
    return QueueScope.for_points(reviewer.points)


@dataclass(frozen=True)
class QueueView:
    """One page of the queue and the counts of the reviewer's scope."""

    scope: QueueScope
    page: QueuePage
    totals: QueueCounts


async def queue_page(
    pool: asyncpg.Pool,
    reviewer: Reviewer,
    filters: QueueFilters,
    sort: QueueSort,
    request: QueuePageRequest,
    *,
    now: datetime,
    lease: timedelta,
) -> QueueView:
    """The page the reviewer asked for; 400 `review.invalid_query` for a filter or cursor that
    cannot be served (never a 500)."""
    scope = scope_of(reviewer)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await use_schema(conn, QUEUE_SCHEMA)
            page = await list_queue(conn, scope, filters, sort, request, now=now, lease=lease)
            totals = await counts(conn, scope, now, lease)
    except InvalidQuery as exc:
        raise InvalidQueueQuery(str(exc), str(exc)) from exc
    except asyncpg.DataError as exc:  # a cursor or text PostgreSQL cannot take (NUL, int32)
        raise InvalidQueueQuery(f"{type(exc).__name__}: {exc}") from exc
    return QueueView(scope, page, totals)


async def claim_next(
    pool: asyncpg.Pool, cases: Cases, reviewer: Reviewer, *, now: datetime
) -> ReviewCase:
    """下一件: claim the unclaimed case of the reviewer's working queue that waited longest.

    Another reviewer may take a case between the query and the claim: then the next one is
    tried, up to NEXT_CANDIDATES; 404 `review.queue_empty` when nothing could be taken.
    """
    filters = QueueFilters(claim="unclaimed", reviewer_id=reviewer.staff_id)
    view = await queue_page(
        pool, reviewer, filters, QueueSort.WAITING, QueuePageRequest(size=NEXT_CANDIDATES),
        now=now, lease=cases.lease,
    )  # fmt: skip
    for row in view.page.rows:
        try:
            return await cases.claim(
                reviewer, row.application_id, submission_number=row.submission_number
            )
        except (ReviewError, ConcurrentDecision):
            continue  # taken, moved on or resubmitted meanwhile: try the next one
    raise QueueEmpty(f"no claimable case among {len(view.page.rows)} tried")
