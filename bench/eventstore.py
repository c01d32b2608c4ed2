"""Append and replay throughput of eventkit vs the `eventsourcing` library vs raw SQL.

Run from the workspace root:

    uv run python bench/eventstore.py --dsn postgresql://postgres@127.0.0.1:56000/postgres

The DSN is an admin connection: the benchmark drops and creates the databases bench_eventkit,
bench_eventsourcing and bench_raw through it (one per system, so they share no tables), pins
synchronous_commit=on on each, and drops them again at the end (unless --keep-dbs).

Append matrix: events per call x concurrent writers, the same cell run for each system back to
back (in rotating order; before each, the system's events table is truncated and a CHECKPOINT
taken, so every cell starts from the same state and no system is slowed by the rows it wrote
earlier), each for a warm-up and then a fixed measuring window.
Only calls that finish inside the window count. Each writer owns a few streams and appends
successive versions to them in turn, as commands on aggregates do. Every system builds its rows
from the same ~300-byte JSON payloads (Chinese text included) in the writer loop; latency is the
append call alone, throughput is wall clock (so it includes building the events, for all three).

  eventkit       EventStore.append (one INSERT..SELECT unnest, autocommit) on an asyncpg pool
                 of `writers` connections, one asyncio task per writer.
  eventsourcing  PostgresApplicationRecorder.insert_events (its real path: pipeline, BEGIN,
                 LOCK TABLE .. IN EXCLUSIVE MODE, NOTIFY, INSERT..unnest RETURNING notification_id,
                 COMMIT) from one thread per writer, its psycopg pool sized to `writers`.
  raw            one multi-row INSERT .. VALUES per call (a single statement, so one implicit
                 transaction) into a table with eventkit.events' columns, defaults, PK and
                 UNIQUE(stream_type, stream_id, stream_version), without the feed and correlation
                 indexes: the ceiling of writing these rows. asyncpg pool of `writers`.

Replay: a fresh feed of --replay-rows events (appended through EventStore.append, batches of 1, 10
and 100 mixed), read whole through `read_feed` (batches of 1000, envelopes built) vs a keyset
paginated `SELECT * .. ORDER BY tx_id, seq` in the same batch size on a plain asyncpg connection;
two diagnostic readers split the gap (JSON decoding vs envelope building).

Diagnostics (same run, 1 event per call): raw with eventkit's feed and correlation indexes added,
and eventkit on a pool with asyncpg's full reset on release (eventkit's pools skip that round
trip by default; the raw baseline's pool skips it too, so raw stays the ceiling).

eventsourcing runs on psycopg's C binding (`psycopg[binary]` is in the dev group): its fastest
configuration, so the comparison is fair to it. The implementation in use is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresFactory

from eventkit.db import create_pool, dumps
from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.feed import _READ as FEED_SQL  # diagnostics only: the feed's SQL without envelopes
from eventkit.feed import Position, read_feed
from eventkit.migrations import migrate
from eventkit.store import EventStore

DB_NAMES = {
    "eventkit": "bench_eventkit",
    "eventsourcing": "bench_eventsourcing",
    "raw": "bench_raw",
}
SYSTEMS = ("eventkit", "eventsourcing", "raw")
EVENT_TABLES = {
    "eventkit": "eventkit.events",
    "eventsourcing": "public.stored_events",
    "raw": "public.raw_events",
}
STREAM_TYPE = "application"
EVENT_TYPES = ("ApplicationSubmitted", "CredentialAttached", "ReviewAssigned", "ReviewDecided")
TOPIC_PREFIX = "exemption.application:"
ACTOR = Actor(kind="candidate", id="candidate-0000123456")
RESULTS = Path(__file__).resolve().parent / "results" / "eventstore.json"

RAW_DDL = """
CREATE TABLE public.raw_events (
    seq            bigint GENERATED ALWAYS AS IDENTITY,
    tx_id          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id       uuid NOT NULL,
    stream_type    text NOT NULL,
    stream_id      text NOT NULL,
    stream_version integer NOT NULL CHECK (stream_version >= 1),
    event_type     text NOT NULL,
    schema_version integer NOT NULL CHECK (schema_version >= 1),
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT statement_timestamp(),
    correlation_id uuid NOT NULL,
    causation_id   uuid,
    actor_kind     text NOT NULL,
    actor_id       text NOT NULL,
    payload        jsonb NOT NULL,
    CONSTRAINT raw_events_pkey PRIMARY KEY (event_id),
    CONSTRAINT raw_events_stream_version_key UNIQUE (stream_type, stream_id, stream_version)
)
"""
# Diagnostics: eventkit.events' two secondary indexes, to price them separately.
RAW_EXTRA_INDEXES = (
    "CREATE INDEX raw_events_feed_idx ON public.raw_events (tx_id, seq)",
    "CREATE INDEX raw_events_correlation_idx ON public.raw_events (correlation_id)",
)
RAW_COLUMNS = (
    "event_id, stream_type, stream_id, stream_version, event_type, schema_version,"
    " occurred_at, correlation_id, causation_id, actor_kind, actor_id, payload"
)
RAW_NCOLS = 12

RAW_SELECT = """
SELECT * FROM eventkit.events
WHERE (tx_id, seq) > ($1::xid8, $2)
ORDER BY tx_id, seq
LIMIT $3
"""


# ----------------------------------------------------------------------------- payloads


_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"
_COURSES = (
    ("00015", "英语（二）"),
    ("03708", "中国近现代史纲要"),
    ("00023", "高等数学（工本）"),
    ("02331", "数据结构"),
    ("00342", "高级语言程序设计（一）"),
)
_REASONS = (
    "已通过全国大学英语四级考试，成绩合格，申请免考该课程。",
    "已取得相同课程的专科学历课程成绩，申请按规定免考。",
    "持有国家承认的计算机技术与软件专业资格证书，申请免考。",
)


def make_payloads(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Realistic exemption-application payloads, ~300 bytes of compact UTF-8 JSON each."""
    rng = random.Random(seed)
    payloads = []
    for _ in range(count):
        code, course = rng.choice(_COURSES)
        payloads.append(
            {
                "application_id": str(uuid.UUID(int=rng.getrandbits(128))),
                "candidate_name": rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(_GIVEN),
                "exam_no": f"{rng.randrange(10**11, 10**12)}",
                "course": {"code": code, "name": course},
                "reason": rng.choice(_REASONS),
                "credential": {"kind": "cet4", "no": f"{rng.randrange(10**14, 10**15)}"},
                "score": rng.randrange(425, 710),
                "province": "广东",
            }
        )
    return payloads


# ----------------------------------------------------------------------------- measuring


@dataclass
class Window:
    """The warm-up end and measuring end of one cell, on the perf_counter clock."""

    warm_end: float
    end: float


def cpu_snapshot() -> tuple[float, float, float]:
    """(this process's CPU seconds, machine busy jiffies, machine total jiffies)."""
    busy = total = 0.0
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [float(x) for x in f.readline().split()[1:9]]
        total = sum(fields)
        busy = total - fields[3] - fields[4]  # minus idle and iowait
    except OSError:
        pass
    return time.process_time(), busy, total


def cpu_usage(before: tuple[float, float, float], after: tuple[float, float, float], wall: float):
    """(client cores, machine busy cores) used between two snapshots."""
    client = (after[0] - before[0]) / wall
    total = after[2] - before[2]
    machine = (after[1] - before[1]) / total * (os.cpu_count() or 1) if total else float("nan")
    return client, machine


async def window_cpu(window: Window) -> tuple[float, float]:
    """CPU used during the measuring window (sampled from the event loop)."""
    await asyncio.sleep(max(0.0, window.warm_end - time.perf_counter()))
    before = cpu_snapshot()
    await asyncio.sleep(max(0.0, window.end - time.perf_counter()))
    return cpu_usage(before, cpu_snapshot(), window.end - window.warm_end)


@dataclass
class Tally:
    """One writer's calls that finished inside the measuring window."""

    latencies: list[float] = field(default_factory=list)
    events: int = 0
    warmup_calls: int = 0

    def record(self, window: Window, started: float, finished: float, events: int) -> None:
        if window.warm_end <= finished <= window.end:
            self.latencies.append(finished - started)
            self.events += events
        elif finished < window.warm_end:
            self.warmup_calls += 1


@dataclass
class Cell:
    system: str
    events_per_call: int
    writers: int
    events_per_s: float
    calls_per_s: float
    p50_ms: float
    p99_ms: float
    calls: int
    events: int
    warmup_calls: int
    seconds: float
    client_cpu_cores: float = float("nan")
    machine_busy_cores: float = float("nan")
    variant: str = ""


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, int(-(-q * len(sorted_values) // 1)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarise(
    system: str,
    batch: int,
    writers: int,
    tallies: list[Tally],
    seconds: float,
    cpu: tuple[float, float],
    variant: str = "",
) -> Cell:
    latencies = sorted(x for t in tallies for x in t.latencies)
    events = sum(t.events for t in tallies)
    return Cell(
        system=system,
        events_per_call=batch,
        writers=writers,
        events_per_s=events / seconds,
        calls_per_s=len(latencies) / seconds,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        calls=len(latencies),
        events=events,
        warmup_calls=sum(t.warmup_calls for t in tallies),
        seconds=seconds,
        client_cpu_cores=cpu[0],
        machine_busy_cores=cpu[1],
        variant=variant,
    )


# ----------------------------------------------------------------------------- databases


def dsn_for(admin_dsn: str, dbname: str) -> str:
    parts = urlsplit(admin_dsn)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


async def recreate_databases(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        for name in DB_NAMES.values():
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{name}"')
            await conn.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
    finally:
        await conn.close()


async def drop_databases(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        for name in DB_NAMES.values():
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def truncate(dsn: str, table: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"TRUNCATE {table}")
    finally:
        await conn.close()


async def checkpoint(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def server_facts(admin_dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(admin_dsn)
    try:
        facts = {"version": str(await conn.fetchval("SHOW server_version"))}
        for name in (
            "synchronous_commit",
            "fsync",
            "wal_sync_method",
            "full_page_writes",
            "commit_delay",
            "shared_buffers",
            "max_wal_size",
        ):
            facts[name] = str(await conn.fetchval(f"SHOW {name}"))
        return facts
    finally:
        await conn.close()


def es_env(admin_dsn: str, writers: int) -> dict[str, str]:
    """The eventsourcing library's environment for bench_eventsourcing, pool sized to writers."""
    parts = urlsplit(admin_dsn)
    return {
        "POSTGRES_DBNAME": DB_NAMES["eventsourcing"],
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_POOL_SIZE": str(writers),
        "POSTGRES_MAX_OVERFLOW": "0",
        "CREATE_TABLE": "yes",
    }


# ----------------------------------------------------------------------------- eventkit


async def _no_reset(conn: asyncpg.Connection) -> None:
    """A pool `reset` that skips asyncpg's per-release round trip, as eventkit's pools do."""


async def eventkit_cell(
    dsn: str,
    batch: int,
    writers: int,
    warmup: float,
    duration: float,
    streams: int,
    payloads,
    variant: str = "",
) -> Cell:
    pool = await create_pool(dsn, min_size=writers, max_size=writers, reset_session=bool(variant))
    try:
        store = EventStore(pool)
        tallies = [Tally() for _ in range(writers)]
        start = time.perf_counter()
        window = Window(start + warmup, start + warmup + duration)

        async def writer(w: int) -> None:
            ids = [str(uuid.uuid4()) for _ in range(streams)]
            versions = [0] * streams
            tally = tallies[w]
            k = w * 7919
            n = 0
            while time.perf_counter() < window.end:
                i = n % streams
                events = [
                    NewEvent(
                        event_type=EVENT_TYPES[(k + j) % len(EVENT_TYPES)],
                        payload=payloads[(k + j) % len(payloads)],
                    )
                    for j in range(batch)
                ]
                metadata = Metadata(actor=ACTOR)
                t0 = time.perf_counter()
                await store.append(STREAM_TYPE, ids[i], versions[i], events, metadata)
                t1 = time.perf_counter()
                tally.record(window, t0, t1, batch)
                versions[i] += batch
                k += batch
                n += 1

        cpu, *_ = await asyncio.gather(window_cpu(window), *(writer(w) for w in range(writers)))
        return summarise("eventkit", batch, writers, tallies, duration, cpu, variant)
    finally:
        await pool.close()


# ----------------------------------------------------------------------------- raw INSERT


def raw_insert_sql(rows: int) -> str:
    values = ", ".join(
        "(" + ", ".join(f"${r * RAW_NCOLS + c + 1}" for c in range(RAW_NCOLS)) + ")"
        for r in range(rows)
    )
    return f"INSERT INTO public.raw_events ({RAW_COLUMNS}) VALUES {values}"


async def raw_cell(
    dsn: str,
    batch: int,
    writers: int,
    warmup: float,
    duration: float,
    streams: int,
    payloads,
    variant: str = "",
) -> Cell:
    pool = await asyncpg.create_pool(dsn, min_size=writers, max_size=writers, reset=_no_reset)
    assert pool is not None
    sql = raw_insert_sql(batch)
    try:
        tallies = [Tally() for _ in range(writers)]
        start = time.perf_counter()
        window = Window(start + warmup, start + warmup + duration)

        async def writer(w: int) -> None:
            ids = [str(uuid.uuid4()) for _ in range(streams)]
            versions = [0] * streams
            tally = tallies[w]
            k = w * 7919
            n = 0
            while time.perf_counter() < window.end:
                i = n % streams
                correlation_id = uuid.uuid4()
                args: list[Any] = []
                for j in range(batch):
                    args += (
                        uuid.uuid4(),
                        STREAM_TYPE,
                        ids[i],
                        versions[i] + j + 1,
                        EVENT_TYPES[(k + j) % len(EVENT_TYPES)],
                        1,
                        datetime.now(UTC),
                        correlation_id,
                        None,
                        ACTOR.kind,
                        ACTOR.id,
                        dumps(payloads[(k + j) % len(payloads)]),
                    )
                t0 = time.perf_counter()
                async with pool.acquire() as conn:
                    await conn.execute(sql, *args)
                t1 = time.perf_counter()
                tally.record(window, t0, t1, batch)
                versions[i] += batch
                k += batch
                n += 1

        cpu, *_ = await asyncio.gather(window_cpu(window), *(writer(w) for w in range(writers)))
        return summarise("raw", batch, writers, tallies, duration, cpu, variant)
    finally:
        await pool.close()


# ----------------------------------------------------------------------------- eventsourcing


def eventsourcing_cell(
    admin_dsn: str,
    batch: int,
    writers: int,
    warmup: float,
    duration: float,
    streams: int,
    payloads,
) -> Cell:
    factory = PostgresFactory(es_env(admin_dsn, writers))
    try:
        recorder = factory.application_recorder()
        assert isinstance(recorder, PostgresApplicationRecorder)
        factory.datastore.pool.open(wait=True, timeout=30)
        tallies = [Tally() for _ in range(writers)]
        go = threading.Event()
        window = Window(0.0, 0.0)
        errors: list[BaseException] = []

        def writer(w: int) -> None:
            try:
                ids = [uuid.uuid4() for _ in range(streams)]
                versions = [0] * streams
                tally = tallies[w]
                k = w * 7919
                n = 0
                go.wait()
                while time.perf_counter() < window.end:
                    i = n % streams
                    stored = [
                        StoredEvent(
                            originator_id=ids[i],
                            originator_version=versions[i] + j + 1,
                            topic=TOPIC_PREFIX + EVENT_TYPES[(k + j) % len(EVENT_TYPES)],
                            state=dumps(payloads[(k + j) % len(payloads)]).encode(),
                        )
                        for j in range(batch)
                    ]
                    t0 = time.perf_counter()
                    ids_out = recorder.insert_events(stored)
                    t1 = time.perf_counter()
                    assert ids_out is not None
                    assert len(ids_out) == batch
                    tally.record(window, t0, t1, batch)
                    versions[i] += batch
                    k += batch
                    n += 1
            except BaseException as exc:
                errors.append(exc)
                raise

        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(writers)]
        for t in threads:
            t.start()
        start = time.perf_counter()
        window.warm_end = start + warmup
        window.end = start + warmup + duration
        go.set()
        time.sleep(max(0.0, window.warm_end - time.perf_counter()))
        before = cpu_snapshot()
        time.sleep(max(0.0, window.end - time.perf_counter()))
        cpu = cpu_usage(before, cpu_snapshot(), duration)
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return summarise("eventsourcing", batch, writers, tallies, duration, cpu)
    finally:
        factory.close()


# ----------------------------------------------------------------------------- setup + checks


async def setup(admin_dsn: str) -> None:
    await recreate_databases(admin_dsn)
    await migrate(dsn_for(admin_dsn, DB_NAMES["eventkit"]), "bench")
    conn = await asyncpg.connect(dsn_for(admin_dsn, DB_NAMES["raw"]))
    try:
        await conn.execute(RAW_DDL)
    finally:
        await conn.close()
    factory = PostgresFactory(es_env(admin_dsn, 1))
    try:
        factory.application_recorder()  # creates its table, type and index
    finally:
        factory.close()


async def verify_synchronous_commit(admin_dsn: str) -> dict[str, str]:
    """SHOW synchronous_commit through each system's own client and pool."""
    seen: dict[str, str] = {}
    pool = await create_pool(dsn_for(admin_dsn, DB_NAMES["eventkit"]), min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            seen["eventkit"] = str(await conn.fetchval("SHOW synchronous_commit"))
    finally:
        await pool.close()
    raw = await asyncpg.connect(dsn_for(admin_dsn, DB_NAMES["raw"]))
    try:
        seen["raw"] = str(await raw.fetchval("SHOW synchronous_commit"))
    finally:
        await raw.close()

    def es_show() -> str:
        factory = PostgresFactory(es_env(admin_dsn, 1))
        try:
            with factory.datastore.get_connection() as conn:
                row = conn.execute("SHOW synchronous_commit").fetchone()
                assert row is not None
                return str(row["synchronous_commit"])
        finally:
            factory.close()

    seen["eventsourcing"] = await asyncio.to_thread(es_show)
    return seen


# ----------------------------------------------------------------------------- replay


async def timed_pages(
    read_page: Callable[[Any], Awaitable[tuple[int, Any]]],
) -> tuple[int, float]:
    """Read pages until an empty one; returns (rows, seconds)."""
    rows = 0
    cursor: Any = None
    t0 = time.perf_counter()
    while True:
        n, cursor = await read_page(cursor)
        if n == 0:
            break
        rows += n
    return rows, time.perf_counter() - t0


async def fill_feed(dsn: str, total: int, writers: int, payloads) -> float:
    """A fresh feed of `total` events through EventStore.append, batches of 1, 10 and 100 mixed."""
    await truncate(dsn, "eventkit.events")
    pool = await create_pool(dsn, min_size=writers, max_size=writers)
    store = EventStore(pool)
    remaining = [total]
    t0 = time.perf_counter()

    async def writer(w: int) -> None:
        sizes = (1, 10, 100)
        stream, version, n, k = str(uuid.uuid4()), 0, 0, w * 7919
        while remaining[0] > 0:
            batch = min(sizes[n % 3], remaining[0])
            remaining[0] -= batch
            events = [
                NewEvent(
                    event_type=EVENT_TYPES[(k + j) % len(EVENT_TYPES)],
                    payload=payloads[(k + j) % len(payloads)],
                )
                for j in range(batch)
            ]
            await store.append(STREAM_TYPE, stream, version, events, Metadata(actor=ACTOR))
            version += batch
            k += batch
            n += 1
            if version >= 500:  # streams of a few hundred events, then a new aggregate
                stream, version = str(uuid.uuid4()), 0

    try:
        await asyncio.gather(*(writer(w) for w in range(writers)))
    finally:
        await pool.close()
    return time.perf_counter() - t0


async def replay(dsn: str, batch: int, passes: int) -> dict[str, Any]:
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute("VACUUM ANALYZE eventkit.events")
        total = int(await admin.fetchval("SELECT count(*) FROM eventkit.events"))
    finally:
        await admin.close()
    pool = await create_pool(dsn, min_size=1, max_size=1)  # eventkit's codecs (jsonb -> dict)
    plain = await asyncpg.connect(dsn)  # no codecs: jsonb stays text
    try:
        async with pool.acquire() as ek:

            async def feed_page(cursor: Any) -> tuple[int, Any]:
                page = await read_feed(ek, cursor or Position.ZERO, batch)
                return len(page), (page[-1].position if page else cursor)

            async def feed_sql_page(cursor: Any) -> tuple[int, Any]:
                tx, seq = cursor or (0, 0)
                rows = await ek.fetch(FEED_SQL, str(tx), seq, batch)
                return len(rows), ((rows[-1]["tx"], rows[-1]["seq"]) if rows else cursor)

            def select_page(conn: asyncpg.Connection) -> Callable[[Any], Awaitable[Any]]:
                async def page(cursor: Any) -> tuple[int, Any]:
                    tx, seq = cursor or (0, 0)
                    rows = await conn.fetch(RAW_SELECT, tx, seq, batch)
                    return len(rows), ((rows[-1]["tx_id"], rows[-1]["seq"]) if rows else cursor)

                return page

            readers: dict[str, Callable[[Any], Awaitable[tuple[int, Any]]]] = {
                "raw_select": select_page(plain),
                "read_feed": feed_page,
                "raw_select_json_decoded": select_page(ek),
                "feed_sql_no_envelopes": feed_sql_page,
            }
            best: dict[str, dict[str, float]] = {}
            for _ in range(passes):  # alternate, keep each reader's best pass
                for name, reader in readers.items():
                    rows, seconds = await timed_pages(reader)
                    if rows != total:
                        raise RuntimeError(f"{name} read {rows} rows, expected {total}")
                    rate = rows / seconds
                    if name not in best or rate > best[name]["rows_per_s"]:
                        best[name] = {"rows": rows, "seconds": seconds, "rows_per_s": rate}
    finally:
        await plain.close()
        await pool.close()
    return {"rows": total, "batch": batch, "passes": passes, "readers": best}


# ----------------------------------------------------------------------------- report


def fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def matrix_table(cells: list[Cell]) -> str:
    by = {(c.system, c.events_per_call, c.writers): c for c in cells if not c.variant}
    keys = sorted({(c.events_per_call, c.writers) for c in cells if not c.variant})
    head = (
        "| ev/call | writers | eventkit ev/s | eventsourcing ev/s | raw ev/s "
        "| ek/es | ek/raw | ek calls/s | es calls/s | raw calls/s "
        "| ek p50/p99 ms | es p50/p99 ms | raw p50/p99 ms | client CPU cores ek/es/raw |"
    )
    lines = [head, "|" + "---:|" * 14]
    for batch, writers in keys:
        ek, es, raw = (by[(s, batch, writers)] for s in SYSTEMS)
        lines.append(
            f"| {batch} | {writers} | {fmt_int(ek.events_per_s)} | {fmt_int(es.events_per_s)} "
            f"| {fmt_int(raw.events_per_s)} | {ek.events_per_s / es.events_per_s:.2f} "
            f"| {ek.events_per_s / raw.events_per_s:.2f} | {fmt_int(ek.calls_per_s)} "
            f"| {fmt_int(es.calls_per_s)} | {fmt_int(raw.calls_per_s)} "
            f"| {ek.p50_ms:.2f} / {ek.p99_ms:.2f} | {es.p50_ms:.2f} / {es.p99_ms:.2f} "
            f"| {raw.p50_ms:.2f} / {raw.p99_ms:.2f} | {ek.client_cpu_cores:.2f} / "
            f"{es.client_cpu_cores:.2f} / {raw.client_cpu_cores:.2f} |"
        )
    return "\n".join(lines)


def diagnostics_table(cells: list[Cell], extra: list[Cell]) -> str:
    lines = [
        "| variant (1 ev/call) | writers | ev/s | same cell, main run | p50 / p99 ms |",
        "|---|---:|---:|---:|---:|",
    ]
    for d in extra:
        system = "raw" if d.variant.startswith("raw") else "eventkit"
        base = next(
            (
                c
                for c in cells
                if not c.variant
                and c.system == system
                and c.events_per_call == 1
                and c.writers == d.writers
            ),
            None,
        )
        same = f"{system} {fmt_int(base.events_per_s)}" if base else "-"
        lines.append(
            f"| {d.variant} | {d.writers} | {fmt_int(d.events_per_s)} | {same} "
            f"| {d.p50_ms:.2f} / {d.p99_ms:.2f} |"
        )
    return "\n".join(lines)


REPLAY_READERS = {
    "raw_select": "raw SELECT * keyset, plain asyncpg (jsonb as text)",
    "read_feed": "eventkit read_feed -> FeedEvent/EventEnvelope",
    "raw_select_json_decoded": "diag: raw SELECT * on eventkit's pool (jsonb json.loads)",
    "feed_sql_no_envelopes": "diag: read_feed's SQL on eventkit's pool, no envelopes",
}


def replay_table(result: dict[str, Any]) -> str:
    base = result["readers"]["raw_select"]["rows_per_s"]
    lines = [
        "| reader | rows | s (best pass) | rows/s | us/row | vs raw SELECT |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in result["readers"].items():
        lines.append(
            f"| {REPLAY_READERS[name]} | {fmt_int(r['rows'])} | {r['seconds']:.2f} "
            f"| {fmt_int(r['rows_per_s'])} | {1e6 / r['rows_per_s']:.1f} "
            f"| {r['rows_per_s'] / base:.2f} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


async def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    admin = args.dsn
    batches = [int(x) for x in args.batches.split(",")]
    writer_counts = [int(x) for x in args.writers.split(",")]
    payloads = make_payloads(64)
    sizes = [len(dumps(p).encode()) for p in payloads]
    facts = await server_facts(admin)
    await setup(admin)
    sync_seen = await verify_synchronous_commit(admin)
    print(
        f"PostgreSQL {facts['version']}: fsync={facts['fsync']}"
        f" wal_sync_method={facts['wal_sync_method']} commit_delay={facts['commit_delay']}"
        f" shared_buffers={facts['shared_buffers']}; client cores={os.cpu_count()}"
    )
    psycopg_impl = f"{psycopg.pq.__impl__} (psycopg {psycopg.__version__})"
    print(
        f"eventsourcing's psycopg implementation: {psycopg_impl}"
        + (
            "; pure-Python libpq binding, slower client than psycopg[binary]/[c]"
            if psycopg.pq.__impl__ == "python"
            else ""
        )
    )
    for system in SYSTEMS:
        print(
            f"SHOW synchronous_commit via {system} client ({DB_NAMES[system]}): {sync_seen[system]}"
        )
    if any(v != "on" for v in sync_seen.values()):
        print("synchronous_commit is not on for every system; refusing to measure")
        return 2
    print(
        f"payload JSON bytes: min {min(sizes)} / mean {sum(sizes) / len(sizes):.0f}"
        f" / max {max(sizes)}; warm-up {args.warmup}s + window {args.duration}s per cell;"
        f" {args.streams} streams per writer",
        flush=True,
    )

    dsns = {s: dsn_for(admin, DB_NAMES[s]) for s in SYSTEMS}

    async def run_cell(system: str, batch: int, writers: int) -> Cell:
        common = (batch, writers, args.warmup, args.duration, args.streams, payloads)
        if system == "eventkit":
            return await eventkit_cell(dsns["eventkit"], *common)
        if system == "raw":
            return await raw_cell(dsns["raw"], *common)
        return await asyncio.to_thread(eventsourcing_cell, admin, *common)

    systems = tuple(x for x in SYSTEMS if x in args.systems.split(","))
    cells: list[Cell] = []
    rotation = 0
    for batch in batches:
        for writers in writer_counts:
            order = systems[rotation:] + systems[:rotation]
            rotation = (rotation + 1) % len(systems)
            for system in order:
                await truncate(dsns[system], EVENT_TABLES[system])
                await checkpoint(admin)
                cell = await run_cell(system, batch, writers)
                cells.append(cell)
                print(
                    f"  {system:>13} {batch:>3} ev/call x {writers:>2} writers:"
                    f" {fmt_int(cell.events_per_s):>8} ev/s {fmt_int(cell.calls_per_s):>7} calls/s"
                    f" p50 {cell.p50_ms:6.2f} ms p99 {cell.p99_ms:6.2f} ms"
                    f" client CPU {cell.client_cpu_cores:.2f} machine busy"
                    f" {cell.machine_busy_cores:.2f} cores",
                    flush=True,
                )

    # Diagnostics, 1 event per call at the fewest and most writers: what eventkit's two
    # secondary indexes cost on the raw ceiling, and what asyncpg's reset-on-release round trip
    # would cost eventkit (its pools skip it by default).
    extra: list[Cell] = []
    if not args.no_diagnostics:
        if "raw" in systems:
            raw = await asyncpg.connect(dsns["raw"])
            try:
                for ddl in RAW_EXTRA_INDEXES:
                    await raw.execute(ddl)
            finally:
                await raw.close()
        diag: list[tuple[str, Callable[..., Awaitable[Cell]], str]] = []
        if "raw" in systems:
            diag.append(("raw", raw_cell, "raw + feed & correlation indexes"))
        if "eventkit" in systems:
            diag.append(("eventkit", eventkit_cell, "eventkit, asyncpg reset on release"))
        for writers in (min(writer_counts), max(writer_counts)):
            for system, cell_fn, variant in diag:
                await truncate(dsns[system], EVENT_TABLES[system])
                await checkpoint(admin)
                cell = await cell_fn(
                    dsns[system],
                    1,
                    writers,
                    args.warmup,
                    args.duration,
                    args.streams,
                    payloads,
                    variant=variant,
                )
                extra.append(cell)
                print(
                    f"  [diag] {variant}: 1 ev/call x {writers:>2} writers:"
                    f" {fmt_int(cell.events_per_s)} ev/s p50 {cell.p50_ms:.2f} ms"
                    f" p99 {cell.p99_ms:.2f} ms client CPU {cell.client_cpu_cores:.2f}",
                    flush=True,
                )

    replay_result: dict[str, Any] | None = None
    if "eventkit" in systems and not args.skip_replay:
        fill_s = await fill_feed(dsns["eventkit"], args.replay_rows, 4, payloads)
        print(f"  feed for replay: {fmt_int(args.replay_rows)} events appended in {fill_s:.1f} s")
        replay_result = await replay(dsns["eventkit"], args.replay_batch, args.replay_passes)

    def ev(system: str, writers: int) -> float:
        return next(
            c.events_per_s
            for c in cells
            if c.system == system and c.events_per_call == 1 and c.writers == writers
        )

    wmax, wmin = max(writer_counts), min(writer_counts)
    ratios: dict[str, float] = {}
    if {"eventkit", "eventsourcing"} <= set(systems) and 1 in batches:
        ratios[f"append_ratio_vs_eventsourcing_{wmax}w"] = ev("eventkit", wmax) / ev(
            "eventsourcing", wmax
        )
        ratios[f"append_ratio_vs_eventsourcing_{wmin}w"] = ev("eventkit", wmin) / ev(
            "eventsourcing", wmin
        )
    if {"eventkit", "raw"} <= set(systems) and 1 in batches:
        ratios[f"append_ratio_vs_raw_insert_{wmax}w"] = ev("eventkit", wmax) / ev("raw", wmax)
    if replay_result is not None:
        readers = replay_result["readers"]
        ratios["replay_ratio_vs_raw_select"] = (
            readers["read_feed"]["rows_per_s"] / readers["raw_select"]["rows_per_s"]
        )
    target_values = {
        f"append_ratio_vs_eventsourcing_{wmax}w": 4.0,
        f"append_ratio_vs_eventsourcing_{wmin}w": 1.5,
        f"append_ratio_vs_raw_insert_{wmax}w": 0.5,
        "replay_ratio_vs_raw_select": 0.3,
    }
    targets = {k: t for k, t in target_values.items() if k in ratios}
    elapsed = time.perf_counter() - started

    if not args.keep_dbs:
        await drop_databases(admin)

    out = Path(args.out)
    write_json(
        out,
        {
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "elapsed_s": round(elapsed, 1),
            "server": facts,
            "synchronous_commit_seen": sync_seen,
            "client": {
                "python": platform.python_version(),
                "cores": os.cpu_count(),
                "asyncpg": asyncpg.__version__,
                "psycopg_impl": psycopg_impl,
            },
            "params": {
                "events_per_call": batches,
                "writers": writer_counts,
                "warmup_s": args.warmup,
                "duration_s": args.duration,
                "streams_per_writer": args.streams,
                "payload_bytes_mean": sum(sizes) / len(sizes),
                "replay_batch": args.replay_batch,
            },
            "matrix": [asdict(c) for c in cells],
            "diagnostics": [asdict(c) for c in extra],
            "replay": replay_result,
            "ratios": {k: round(v, 2) for k, v in ratios.items()},
            "targets": {
                k: {"target": t, "measured": round(ratios[k], 2), "met": ratios[k] >= t}
                for k, t in targets.items()
            },
        },
    )

    print()
    if set(systems) == set(SYSTEMS):
        print("## Append (events/s at each cell; latency per call)")
        print()
        print(matrix_table(cells))
        print()
    if extra:
        print("## Diagnostics (same run)")
        print()
        print(diagnostics_table(cells, extra))
        print()
    if replay_result is not None:
        print(
            f"## Replay of the eventkit feed ({fmt_int(replay_result['rows'])} rows,"
            f" batches of {replay_result['batch']}, best of {replay_result['passes']} passes)"
        )
        print()
        print(replay_table(replay_result))
        print()
    for k, t in targets.items():
        print(f"target {k} >= {t}: {'met' if ratios[k] >= t else 'MISSED'}")
    print(f"run took {elapsed:.0f} s; results in {out}")
    print()
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    return 0


def _stack_dsn() -> str | None:
    """The admin DSN of the stack `devstack exec` started, when there is one."""
    if not os.environ.get("DEVSTACK_PG_PORT"):
        return None
    from devstack import Endpoints

    return Endpoints.from_env().pg_dsn("postgres")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dsn",
        default=_stack_dsn(),
        required=_stack_dsn() is None,
        help="admin DSN; bench_* databases are made here (default: the DEVSTACK_* stack's)",
    )
    parser.add_argument("--batches", default="1,10,100", help="events per call")
    parser.add_argument("--writers", default="1,4,16", help="concurrent writers")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds, excluded")
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds per cell")
    parser.add_argument("--streams", type=int, default=4, help="streams per writer")
    parser.add_argument("--replay-batch", type=int, default=1000)
    parser.add_argument("--replay-rows", type=int, default=200_000, help="size of the feed")
    parser.add_argument("--replay-passes", type=int, default=2)
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="subset, for profiling")
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--no-diagnostics", action="store_true")
    parser.add_argument("--keep-dbs", action="store_true")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
