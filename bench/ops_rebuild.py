"""Replay: the review queue rebuilt from Kafka while its live consumer runs, compared and swapped.

    devstack exec -- uv run python bench/ops_rebuild.py [--applications N]

A window's worth of the application service's events is produced to fresh topics: N
applications submitted (ApplicationSubmitted), a fifth of them returned and resubmitted, with
review's decisions (claims, returns, 初审) on the decision topic. The `review_queue` projection
(the service's own code, on topics of its own for the run) first consumes them live; then the
steps of `ops rebuild review review_queue --verify --swap` are timed one by one: the rebuild into
the shadow up to the live offsets, the comparison under the live checkpoint's lock, the swap.
Peak RSS of the process is reported. Results are appended to bench/results/ops_rebuild.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contracts.application import (
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWindowOpened,
)
from contracts.review import ApplicationReturned, InitialReviewCompleted, ReviewClaimed
from devstack.endpoints import Endpoints
from devstack.testing import create_database
from eventkit.consumer import KafkaProjectionRunner
from eventkit.db import create_pool
from eventkit.envelope import Actor, DomainEvent, EventEnvelope
from eventkit.kafka import TopicSpec, ensure_topics, idempotent_producer
from eventkit.migrations import migrate
from eventkit.replay import compare_with_live, live_offsets, rebuild_from_kafka, swap
from review_service.adapters.queue import QUEUE_SCHEMA, QueueProjection

RESULTS = Path(__file__).resolve().parent / "results" / "ops_rebuild.json"
NOW = datetime.now(UTC).replace(microsecond=0)


def example(model: type[DomainEvent], **changes: Any) -> DomainEvent:
    sample = model.model_json_schema()["examples"][0]
    return model.model_validate({**sample, **changes})


class Versions:
    """Stream versions per stream, so every envelope is a plausible next event."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    def envelope(
        self, stream_type: str, stream_id: str, event: DomainEvent, at: datetime, actor: Actor
    ) -> EventEnvelope:
        version = self._next.get(stream_id, 0) + 1
        self._next[stream_id] = version
        return EventEnvelope(
            event_id=uuid.uuid4(), event_type=event.event_type,
            schema_version=event.schema_version, stream_type=stream_type, stream_id=stream_id,
            stream_version=version, occurred_at=at, recorded_at=at,
            correlation_id=uuid.uuid4(), actor=actor, payload=event.model_dump(mode="json"),
        )  # fmt: skip


def window_events(applications: int) -> tuple[list[EventEnvelope], list[EventEnvelope]]:
    """The application stream's events and the decision stream's events of one window."""
    versions = Versions()
    window_id = uuid.uuid4()
    ops = Actor(kind="ops", id="bench")
    reviewer = Actor(kind="staff", id=str(uuid.uuid4()))
    opened = example(ApplicationWindowOpened, window_id=str(window_id))
    apps = [versions.envelope("application.window", str(window_id), opened, NOW, ops)]
    decisions: list[EventEnvelope] = []
    for n in range(applications):
        application_id = uuid.uuid4()
        candidate = Actor(kind="candidate", id=str(uuid.uuid4()))
        at = NOW - timedelta(days=30) + timedelta(seconds=n * 60)
        case = f"MK2026{n + 1:06d}"
        common = {"application_id": str(application_id), "candidate_id": candidate.id,
                  "window_id": str(window_id), "case_number": case,
                  "confirmation_point_id": f"14{n % 20 + 1:04d}"}  # fmt: skip
        submitted = example(ApplicationSubmitted, **common, submission_number=1)
        apps.append(versions.envelope("application.exemption", str(application_id), submitted,
                                      at, candidate))  # fmt: skip
        if n % 2:
            continue
        claim = example(ReviewClaimed, application_id=str(application_id), submission_number=1)
        decisions.append(versions.envelope("review.decision", str(application_id), claim,
                                           at + timedelta(hours=1), reviewer))  # fmt: skip
        if n % 5 == 0:
            returned = example(ApplicationReturned, application_id=str(application_id),
                               submission_number=1)  # fmt: skip
            decisions.append(versions.envelope("review.decision", str(application_id), returned,
                                               at + timedelta(hours=2), reviewer))  # fmt: skip
            again = example(ApplicationResubmitted, **common, submission_number=2)
            apps.append(versions.envelope("application.exemption", str(application_id), again,
                                          at + timedelta(days=1), candidate))  # fmt: skip
        else:
            done = example(InitialReviewCompleted, application_id=str(application_id),
                           submission_number=1)  # fmt: skip
            decisions.append(versions.envelope("review.decision", str(application_id), done,
                                               at + timedelta(hours=2), reviewer))  # fmt: skip
    return apps, decisions


async def produce(bootstrap: str, topic: str, envelopes: list[EventEnvelope]) -> None:
    producer = idempotent_producer(bootstrap, "bench-ops")
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=e.to_json_bytes(), key=e.stream_id.encode())
            for e in envelopes
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def run(applications: int, partitions: int) -> dict[str, Any]:
    endpoints = Endpoints.from_env()
    tag = uuid.uuid4().hex[:8]
    dsn = await create_database(endpoints, f"bench_ops_{tag}")
    pool = await create_pool(dsn, min_size=2, max_size=4)
    await migrate(dsn, "review")
    names = ("exemption", "window", "decision")
    exemption, window, decision = (f"bench_{t}_{tag}" for t in names)
    specs = [TopicSpec(t, partitions) for t in (exemption, window, decision)]
    await ensure_topics(endpoints.kafka_bootstrap, specs)

    class BenchQueue(QueueProjection):
        topics = (exemption, window, decision)

    projection = BenchQueue()
    apps, decisions = window_events(applications)
    started = time.perf_counter()
    await produce(endpoints.kafka_bootstrap, window, apps[:1])
    await produce(endpoints.kafka_bootstrap, exemption, apps[1:])
    await produce(endpoints.kafka_bootstrap, decision, decisions)
    produce_s = time.perf_counter() - started
    total_events = len(apps) + len(decisions)

    runner = KafkaProjectionRunner(pool, projection, bootstrap=endpoints.kafka_bootstrap)
    stop = asyncio.Event()
    started = time.perf_counter()
    live = asyncio.create_task(runner.run(stop))
    while runner.totals.applied + runner.totals.dead_lettered < total_events:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    live_s = time.perf_counter() - started

    async with pool.acquire() as conn:
        until = await live_offsets(conn, projection)
    started = time.perf_counter()
    rebuilt = await rebuild_from_kafka(pool, projection, endpoints.kafka_bootstrap, until=until)
    rebuild_s = time.perf_counter() - started
    started = time.perf_counter()
    comparison = await compare_with_live(pool, projection, endpoints.kafka_bootstrap)
    compare_s = time.perf_counter() - started
    started = time.perf_counter()
    await swap(pool, projection)
    swap_s = time.perf_counter() - started
    stop.set()
    await live
    cases = await pool.fetchval(f"SELECT count(*) FROM {QUEUE_SCHEMA}.cases")
    letters = await pool.fetchval("SELECT count(*) FROM eventkit.dead_letters")
    pg_version = await pool.fetchval("SHOW server_version")
    await pool.close()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "postgres": pg_version,
        "applications": applications,
        "events": total_events,
        "partitions": partitions,
        "cases_in_queue": cases,
        "dead_letters": letters,
        "produce_s": round(produce_s, 2),
        "live_consume_s": round(live_s, 2),
        "live_events_per_s": round(total_events / live_s),
        "rebuild_events": rebuilt,
        "rebuild_s": round(rebuild_s, 2),
        "rebuild_events_per_s": round(rebuilt / rebuild_s),
        "compare_s": round(compare_s, 2),
        "equal": comparison.equal,
        "differences": [
            {
                "table": d.table,
                "only_live": d.only_live,
                "only_shadow": d.only_shadow,
                "sample_live": d.samples_live[:1],
                "sample_shadow": d.samples_shadow[:1],
            }
            for d in comparison.differences
        ],
        "swap_s": round(swap_s, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--applications", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=3)
    args = parser.parse_args()
    result = asyncio.run(run(args.applications, args.partitions))
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    RESULTS.parent.mkdir(exist_ok=True)
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    history.append(result)
    RESULTS.write_text(json.dumps(history, indent=2, ensure_ascii=False, default=str) + "\n")


if __name__ == "__main__":
    main()
