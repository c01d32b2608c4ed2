"""The reviewer UI's queue page over HTTP with 10,000 cases waiting: the whole request.

    devstack exec -- uv run python bench/review_queue_page.py [--cases N] [--points P] [--runs R]

Seeds the `review_queue` projection as `bench/review_queue.py` does (N cases waiting for 初审
across P points, plus 20 % in other states), starts identity and review as uvicorn processes on
fresh databases, logs two staff members in through the login form (a point reviewer bound to
all P points, so all N cases are in their queue, and a senior reviewer), then times GET /queue
variants from one keep-alive client, R runs each after a warm-up: session cookie opened, token
verified, queue and counts queried, names looked up, the Chinese page rendered. p50/p95/max in
ms, appended to bench/results/review_queue_page.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import sys
import time
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from devstack.endpoints import Endpoints
from devstack.testing import create_database, drop_database
from eventkit.db import create_pool
from eventkit.migrations import migrate
from identity_service.adapters.pii import PiiCipher, PiiSettings
from identity_service.bootstrap import wire as wire_identity
from identity_service.settings import IdentitySettings
from identity_service.testing import captcha_answer
from review_service.bootstrap import prepare_database
from servicekit.testing import serve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from review_queue import pct, seed  # the sibling bench's seeding

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "review_queue_page.json"
IDENTITY_MIGRATIONS = ROOT / "services/identity/src/identity_service/migrations"
PASSWORD = "Bench#2026pass"  # noqa: S105 (bench accounts)


async def log_in(base: str, identity: Any, username: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=30)
    form = await client.get("/login")
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.text))
    answer = await captcha_answer(identity, hidden["captcha_id"])
    done = await client.post(
        "/login",
        data={**hidden, "username": username, "password": PASSWORD, "captcha_answer": answer},
    )
    if done.status_code != 303:
        raise RuntimeError(f"login of {username} failed: {done.status_code} {done.text[:300]}")
    return client


async def timed(client: httpx.AsyncClient, url: str, runs: int) -> dict[str, Any]:
    samples: list[float] = []
    size = 0
    for i in range(runs + 20):
        started = time.perf_counter()
        response = await client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"GET {url}: {response.status_code} {response.text[:300]}")
        size = len(response.content)
        if i >= 20:
            samples.append(elapsed)
    return {
        "p50_ms": round(statistics.median(samples), 2),
        "p95_ms": pct(samples, 0.95),
        "max_ms": round(max(samples), 2),
        "bytes": size,
    }


async def run(cases: int, point_count: int, runs: int, logs: Path) -> dict[str, Any]:
    stack = Endpoints.from_env()
    tag = uuid.uuid4().hex[:8]
    names = {"identity": f"bench_page_identity_{tag}", "review": f"bench_page_review_{tag}"}
    dsns = {k: await create_database(stack, v) for k, v in names.items()}
    points = [f"14{i:04d}" for i in range(1, point_count + 1)]
    try:
        await prepare_database(dsns["review"])
        review_pool = await create_pool(dsns["review"], min_size=1, max_size=2)
        started = time.perf_counter()
        await seed(review_pool, cases, points)
        seed_s = time.perf_counter() - started
        await review_pool.close()

        await migrate(dsns["identity"], "identity", IDENTITY_MIGRATIONS)
        identity_pool = await create_pool(dsns["identity"], min_size=1, max_size=2)
        identity = wire_identity(
            identity_pool, IdentitySettings(), PiiCipher.from_settings(PiiSettings())
        )
        await identity.staff.create(
            username="bench.point", display_name="压测 确认点审核员", roles=["reviewer"],
            confirmation_points=points, password=PASSWORD, created_by="bench",
        )  # fmt: skip
        await identity.staff.create(
            username="bench.senior", display_name="压测 省级复审员", roles=["senior_reviewer"],
            confirmation_points=[], password=PASSWORD, created_by="bench",
        )  # fmt: skip
        env = {**os.environ, **stack.to_env(), "EVENTKIT_KAFKA_BOOTSTRAP": stack.kafka_bootstrap}
        with ExitStack() as processes:
            identity_url = processes.enter_context(
                serve(
                    "identity_service.entrypoints.api:app",
                    {**env, "EVENTKIT_PG_DSN": dsns["identity"]},
                    logs / "identity.log",
                )
            )
            review_url = processes.enter_context(
                serve(
                    "review_service.entrypoints.api:app",
                    {
                        **env,
                        "EVENTKIT_PG_DSN": dsns["review"],
                        "SERVICE_URL_IDENTITY": identity_url,
                        "REVIEW_SECURE_COOKIES": "false",
                    },
                    logs / "review.log",
                )
            )
            point = await log_in(review_url, identity, "bench.point")
            senior = await log_in(review_url, identity, "bench.senior")
            first = await point.get("/queue")
            cursor = re.search(r'href="/queue\?after=([^"&]+)"', first.text)
            if cursor is None:
                raise RuntimeError("page one has no 下一页 link")
            pages = {
                "point_default": (point, "/queue"),
                "point_page_2_keyset": (point, f"/queue?after={cursor.group(1)}"),
                "point_sort_deadline": (point, "/queue?sort=deadline"),
                "point_overdue_unclaimed": (point, "/queue?overdue=yes&claim=unclaimed"),
                "point_major_route": (point, "/queue?major=030101K&route=CET4"),
                "point_case_prefix": (point, "/queue?q=MK202600"),
                "point_all_statuses": (point, "/queue?status=all"),
                "point_size_100": (point, "/queue?size=100"),
                "province_default": (senior, "/queue"),
                "province_10k_backlog": (senior, "/queue?status=awaiting_point"),
                "province_10k_sort_resubmissions": (
                    senior,
                    "/queue?status=awaiting_point&sort=resubmissions",
                ),
            }
            results = {name: await timed(c, url, runs) for name, (c, url) in pages.items()}
            await point.aclose()
            await senior.aclose()
        await identity_pool.close()
    finally:
        for name in names.values():
            await drop_database(stack, name)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "cases_waiting_point": cases,
        "cases_total": int(cases * 1.2),
        "points": point_count,
        "runs": runs,
        "seed_s": round(seed_s, 2),
        "pages": results,
        "target_ms": 200,
        "worst_p95_ms": max(r["p95_ms"] for r in results.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    logs = ROOT / ".run" / "bench-review-page"
    logs.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(run(args.cases, args.points, args.runs, logs))
    print(json.dumps(result, indent=2, ensure_ascii=False))
    RESULTS.parent.mkdir(exist_ok=True)
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    history.append(result)
    RESULTS.write_text(json.dumps(history, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
