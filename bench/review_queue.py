"""Review queue under a full window: the queue page's query with 10,000 cases waiting.

    devstack exec -- uv run python bench/review_queue.py [--cases N] [--points P] [--runs R]

A fresh database on the stack's PostgreSQL gets the `review_queue` projection's schema (the same
DDL and indexes the service uses), filled in bulk with COPY: N cases waiting for 初审 across P
confirmation points over 30 days, plus a share at 复审, returned, decided, claimed (live and
lapsed), resubmitted, in three windows one of which is past its point deadline. Then each query
of the queue page (list_queue and counts, as the API will call them) runs R times after a
warm-up, on one connection: p50/p95/max in ms. Results are appended to
bench/results/review_queue.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from devstack.endpoints import Endpoints
from devstack.testing import create_database
from eventkit.db import create_pool
from eventkit.projection import create_schema, use_schema
from review_service.adapters.queue import (
    QUEUE_SCHEMA,
    QueueFilters,
    QueuePageRequest,
    QueueProjection,
    QueueScope,
    QueueSort,
    counts,
    list_queue,
)

RESULTS = Path(__file__).resolve().parent / "results" / "review_queue.json"
NOW = datetime.now(UTC).replace(microsecond=0)
MAJORS = ["580401", "030101K", "530605", "120203K", "080901"]
ROUTES = [("CET4", "cet4_or_above"), ("DEGREE-SAME-NAME", "degree"), ("NCRE2", "ncre2_or_above")]


async def fresh_database(ep: Endpoints) -> str:
    return await create_database(ep, f"bench_queue_{uuid.uuid4().hex[:8]}")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[int(p * (len(ordered) - 1))], 2)


def build(cases: int, points: list[str], windows: list[uuid.UUID]) -> list[tuple[Any, ...]]:
    """Rows of `cases`: `cases` waiting for 初审, plus 20 % more in other states."""
    rng = random.Random(7)
    rows = []
    reviewers = [uuid.uuid4() for _ in range(40)]
    for i in range(int(cases * 1.2)):
        point = points[i % len(points)]
        window = windows[0] if i % 10 else windows[1]  # 10 % in the overdue window
        number = 1 if i % 7 else rng.randint(2, 3)
        submitted = NOW - timedelta(minutes=rng.randint(0, 30 * 24 * 60))
        status, stage, waiting = "awaiting_point", "confirmation_point", submitted
        if i >= cases:  # the extra 20 %: other states
            status, stage = rng.choice(
                [("awaiting_province", "provincial"), ("returned", "confirmation_point"),
                 ("decided", None), ("withdrawn", None)]
            )  # fmt: skip
            waiting = submitted + timedelta(hours=rng.randint(1, 48))
        claimed_by = claimed_at = None
        if status.startswith("awaiting") and i % 5 == 0:  # 20 % claimed, half of them lapsed
            claimed_by = rng.choice(reviewers)
            claimed_at = NOW - timedelta(minutes=rng.choice([5, 15, 45, 120]))
        route, kind = ROUTES[i % len(ROUTES)]
        rows.append(
            (
                uuid.uuid4(), f"MK2026{i:06d}", uuid.uuid4(), point, window, status, stage,
                number, submitted, submitted - timedelta(days=number - 1), waiting, None,
                [MAJORS[i % len(MAJORS)]], [route], [kind], 1 + i % 4, claimed_by, claimed_at,
                claimed_at or waiting, "照片不清晰" if status == "returned" else None,
            )
        )  # fmt: skip
    return rows


async def seed(pool: asyncpg.Pool, cases: int, points: list[str]) -> None:
    windows = [uuid.uuid4(), uuid.uuid4()]
    async with pool.acquire() as conn:
        await create_schema(conn, QueueProjection(), QUEUE_SCHEMA)
        await conn.copy_records_to_table(
            "windows", schema_name=QUEUE_SCHEMA,
            columns=["window_id", "name", "opens_at", "applications_close_at",
                     "point_review_close_at", "province_review_close_at", "results_published_at"],
            records=[
                (windows[0], "2026年上半年", NOW - timedelta(days=40), NOW - timedelta(days=5),
                 NOW + timedelta(days=10), NOW + timedelta(days=25), NOW + timedelta(days=30)),
                (windows[1], "2025年下半年", NOW - timedelta(days=90), NOW - timedelta(days=60),
                 NOW - timedelta(days=1), NOW + timedelta(days=5), NOW + timedelta(days=10)),
            ],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "cases", schema_name=QUEUE_SCHEMA, records=build(cases, points, windows),
            columns=["application_id", "case_number", "candidate_id", "confirmation_point_id",
                     "window_id", "status", "stage", "submission_number", "submitted_at",
                     "first_submitted_at", "waiting_since", "stage_deadline", "major_codes",
                     "route_ids", "kinds", "course_count", "claimed_by", "claimed_at",
                     "last_action_at", "last_return_reason"],
        )  # fmt: skip
        # the deadline the projection derives from each case's window, as it would have
        await conn.execute(
            f"""
            UPDATE {QUEUE_SCHEMA}.cases c SET stage_deadline = CASE c.status
                WHEN 'awaiting_point' THEN w.point_review_close_at
                WHEN 'awaiting_province' THEN w.province_review_close_at END
              FROM {QUEUE_SCHEMA}.windows w WHERE w.window_id = c.window_id
            """
        )
        await conn.execute(f"VACUUM ANALYZE {QUEUE_SCHEMA}.cases")


async def timed(
    pool: asyncpg.Pool, call: Callable[[Any], Awaitable[Any]], runs: int
) -> dict[str, float]:
    samples: list[float] = []
    async with pool.acquire() as conn:
        for i in range(runs + 20):
            started = time.perf_counter()
            async with conn.transaction():
                await use_schema(conn, QUEUE_SCHEMA)
                await call(conn)
            if i >= 20:  # warm-up excluded
                samples.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": pct(samples, 0.95),
        "max_ms": round(max(samples), 2),
    }


async def run(cases: int, point_count: int, runs: int) -> dict[str, Any]:
    dsn = await fresh_database(Endpoints.from_env())
    pool = await create_pool(dsn, min_size=1, max_size=2)
    points = [f"14{i:04d}" for i in range(1, point_count + 1)]
    started = time.perf_counter()
    await seed(pool, cases, points)
    seed_s = time.perf_counter() - started

    one = QueueScope.for_points([points[0]])
    province = QueueScope.province()
    everywhere = QueueFilters(statuses=None)

    async def page_two(conn: Any, scope: QueueScope, base: QueueFilters) -> None:
        # the cursor of page one is taken once (the first call), then page two is timed
        key = (scope, base)
        if key not in cursors:
            cursors[key] = (await list_queue(conn, scope, base, now=NOW)).next_cursor
        await list_queue(conn, scope, base, page=QueuePageRequest(after=cursors[key]), now=NOW)

    cursors: dict[tuple[QueueScope, QueueFilters], str | None] = {}

    def q(
        scope: QueueScope, base: QueueFilters, sort: QueueSort = QueueSort.WAITING,
        page: QueuePageRequest | None = None, **filters: Any,
    ) -> Callable[[Any], Awaitable[Any]]:  # fmt: skip
        chosen = replace(base, **filters)
        return lambda conn: list_queue(conn, scope, chosen, sort, page, now=NOW)

    queries: dict[str, Callable[[Any], Awaitable[Any]]] = {}
    # The province's own stage (复审) holds few cases in this set: its scope is also timed on the
    # 10,000-case 初审 backlog of every point (a status filter), the province-wide worst case.
    backlog = QueueFilters(statuses=(one.working_status,))
    for label, scope, base in (
        ("point", one, everywhere),
        ("province", province, everywhere),
        ("province_10k", province, backlog),
    ):
        queries |= {
            f"{label}_default": q(scope, base),
            f"{label}_page_2_keyset": lambda c, s=scope, b=base: page_two(c, s, b),
            f"{label}_offset_200": q(scope, base, page=QueuePageRequest(offset=200)),
            f"{label}_sort_deadline": q(scope, base, QueueSort.DEADLINE),
            f"{label}_sort_case_number": q(scope, base, QueueSort.CASE_NUMBER),
            f"{label}_sort_resubmissions": q(scope, base, QueueSort.RESUBMISSIONS),
            f"{label}_overdue_unclaimed": q(scope, base, overdue=True, claim="unclaimed"),
            f"{label}_major_route": q(scope, base, major_code="030101K", route_id="CET4"),
            f"{label}_case_prefix": q(scope, base, case_number_prefix="MK202600"),
            f"{label}_size_100": q(scope, base, page=QueuePageRequest(size=100)),
        }
        if base is everywhere:
            queries[f"{label}_counts"] = lambda c, s=scope: counts(c, s, NOW)
    results = {name: await timed(pool, call, runs) for name, call in queries.items()}
    waiting = await pool.fetchval(
        f"SELECT count(*) FROM {QUEUE_SCHEMA}.cases WHERE status = 'awaiting_point'"
    )
    pg_version = await pool.fetchval("SHOW server_version")
    await pool.close()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "postgres": pg_version,
        "cases_waiting_point": waiting,
        "cases_total": int(cases * 1.2),
        "points": point_count,
        "runs": runs,
        "page_size": 20,
        "seed_s": round(seed_s, 2),
        "queries": results,
        "target_ms": 200,
        "worst_p95_ms": max(r["p95_ms"] for r in results.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    result = asyncio.run(run(args.cases, args.points, args.runs))
    print(json.dumps(result, indent=2, ensure_ascii=False))
    RESULTS.parent.mkdir(exist_ok=True)
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    history.append(result)
    RESULTS.write_text(json.dumps(history, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
