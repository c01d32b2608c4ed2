"""`ops lag [--service S] [--max-lag N] [--json]`: how far behind each service's outbox relay and
each projection's consumer are.

Relay lag (per service, per row of `eventkit.relay_positions`): the events committed to the store
after the relay's saved (tx_id, seq) position, i.e. not yet acknowledged by Kafka, and the age of
the oldest of them (by `recorded_at`). The routes (which stream types are published) belong to
the services, which ops does not import, so every event after the position is counted, private
streams included. That is still exact for "the relay is behind": the relay saves its position
past private events too, so a relay that is keeping up has none left. With no saved position
the relay has published nothing yet, and everything counts.

Consumer lag (per projection the service declares through `eventkit.operations`, per partition of
each topic it reads): Kafka's end offset minus the `next_offset` in the projection's
`_checkpoint` (a partition without a checkpoint row counts from its beginning offset), with the
checkpoint's age (time since it last moved; an idle topic has an old checkpoint and no lag), and
the open dead letters of its consumer (`projection.<name>`); dead letters of other consumers are
listed too. Dead letters are reported, not counted as lag. Parked streams (ADR 0018) are
counted per projection (`parked_streams`, and `held_events`: the later events of those streams
held behind their dead letters, which are not errors and not in `open_dead_letters`). A
projection whose schema does not exist in the service's database (never started there) is
listed as `no_schema`, without lag.
Without Kafka configured only relay lag is shown and consumer lag is reported as unknown.

`--max-lag N`: exit 1 when any relay or partition lag exceeds N, or when consumer lag could not
be measured although Kafka is configured (for a cron job or an alert); otherwise exit 0.

`--max-stall S`: exit 1 when something is behind and not moving: a partition with lag whose
checkpoint has not moved for more than S seconds (its consumer is stuck or gone; an idle topic
has no lag, so an old checkpoint alone is no alarm), or a relay whose oldest unpublished event
was committed more than S seconds ago. Lag alone says "behind"; this says "stuck".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from eventkit.db import Conn
from eventkit.kafka import KafkaConnection, kafka_connection, start_or_explain, topic_partitions
from eventkit.operations import ProjectionSpec, discover, service_key
from eventkit.projection import check_identifier
from ops.context import CHINA, EXIT_FAILED, EXIT_OK, EXIT_USAGE, SERVICES, OpsContext, OpsError

KAFKA_TIMEOUT_S = 30.0


@dataclass
class RelayLag:
    """One outbox relay of one service."""

    service: str
    relay: str | None  # None: no relay has saved a position yet
    tx_id: int
    seq: int
    published: int
    updated_at: datetime | None
    pending: int
    oldest_pending_at: datetime | None
    oldest_pending_age_s: float | None


@dataclass
class PartitionLag:
    """One topic-partition a projection reads."""

    topic: str
    partition: int
    end_offset: int
    next_offset: int | None  # None: no checkpoint for this partition yet
    lag: int
    checkpoint_at: datetime | None
    checkpoint_age_s: float | None


@dataclass
class ProjectionLag:
    """One projection of one service."""

    service: str
    projection: str
    consumer: str
    topics: list[str]
    status: str  # ok | no_schema | kafka_unknown
    open_dead_letters: int
    partitions: list[PartitionLag] = field(default_factory=list)
    parked_streams: int = 0  # streams parked behind a dead letter: later events held
    held_events: int = 0  # events held behind those dead letters (not errors)

    @property
    def lag(self) -> int:
        """The projection's total lag over its partitions."""
        return sum(p.lag for p in self.partitions)


@dataclass
class ServiceLag:
    """One service's store: its relays, its projections, its other consumers' dead letters."""

    service: str
    error: str | None = None
    relays: list[RelayLag] = field(default_factory=list)
    projections: list[ProjectionLag] = field(default_factory=list)
    other_dead_letters: dict[str, int] = field(default_factory=dict)
    other_parked_streams: dict[str, int] = field(default_factory=dict)


@dataclass
class LagReport:
    """Every service measured, and whether consumer lag is known."""

    measured_at: datetime
    kafka: str  # measured | not_configured | error: <message>
    services: list[ServiceLag]

    def max_lag(self) -> int:
        """The largest relay or partition lag."""
        lags = [r.pending for s in self.services for r in s.relays]
        lags += [p.lag for s in self.services for j in s.projections for p in j.partitions]
        return max(lags, default=0)

    def stalls(self, max_stall: float) -> list[str]:
        """What is behind and has not moved for more than `max_stall` seconds."""
        found = [
            f"{s.service} 中继 relay {r.relay or '-'}: {r.pending} 条未发布, 最早 "
            f"{r.oldest_pending_age_s:.0f}s 前 / oldest unpublished event "
            f"{r.oldest_pending_age_s:.0f}s old"
            for s in self.services
            for r in s.relays
            if r.pending and (r.oldest_pending_age_s or 0) > max_stall
        ]
        found += [
            f"{s.service} {j.projection} {p.topic}[{p.partition}]: 滞后 {p.lag}, 检查点 "
            f"{p.checkpoint_age_s:.0f}s 未动 / lag {p.lag}, checkpoint still for "
            f"{p.checkpoint_age_s:.0f}s"
            for s in self.services
            for j in s.projections
            for p in j.partitions
            if p.lag and p.checkpoint_age_s is not None and p.checkpoint_age_s > max_stall
        ]
        return found

    def as_json(self) -> dict[str, Any]:
        """JSON-able form."""
        doc = asdict(self)
        return json.loads(json.dumps(doc, default=_json_default))  # type: ignore[no-any-return]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round(max((now - then).total_seconds(), 0.0), 3)


async def relay_lag(conn: Conn, service: str, now: datetime) -> list[RelayLag]:
    """The store's relays and the events after each one's position."""
    positions = await conn.fetch(
        "SELECT relay_name, tx_id::text::bigint AS tx, seq, published, updated_at"
        " FROM eventkit.relay_positions ORDER BY relay_name"
    )
    rows: list[Mapping[str, Any]] = [dict(r) for r in positions] or [
        {"relay_name": None, "tx": 0, "seq": 0, "published": 0, "updated_at": None}
    ]
    out = []
    for row in rows:
        pending = await conn.fetchrow(
            "SELECT count(*) AS n, min(recorded_at) AS oldest FROM eventkit.events"
            " WHERE (tx_id, seq) > ($1::text::xid8, $2)",
            str(row["tx"]),
            row["seq"],
        )
        assert pending is not None
        out.append(
            RelayLag(
                service=service,
                relay=row["relay_name"],
                tx_id=row["tx"],
                seq=row["seq"],
                published=row["published"],
                updated_at=row["updated_at"],
                pending=pending["n"],
                oldest_pending_at=pending["oldest"],
                oldest_pending_age_s=_age(now, pending["oldest"]),
            )
        )
    return out


async def _checkpoints(
    conn: Conn, schema: str
) -> dict[tuple[str, int], tuple[int, datetime]] | None:
    """The projection's checkpoint rows, or None when its schema does not exist."""
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f'"{schema}"._checkpoint')
    if not exists:
        return None
    rows = await conn.fetch(
        f'SELECT topic, kafka_partition, next_offset, updated_at FROM "{schema}"._checkpoint'
    )
    return {(r["topic"], r["kafka_partition"]): (r["next_offset"], r["updated_at"]) for r in rows}


Offsets = dict[TopicPartition, int]


async def kafka_offsets(
    kafka: KafkaConnection | str, topics: Sequence[str]
) -> tuple[Offsets, Offsets]:
    """The beginning and end offsets of every partition of `topics` (missing topics: none)."""
    connection = kafka_connection(kafka)
    partitions = await topic_partitions(connection, sorted(set(topics)))
    if not partitions:
        return {}, {}
    consumer = AIOKafkaConsumer(
        **connection.client_kwargs(), group_id=None, enable_auto_commit=False
    )
    try:
        await start_or_explain(consumer.start, connection)
        begin = await consumer.beginning_offsets(partitions)
        end = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    return dict(begin), dict(end)


async def measure_lag(
    pools: Mapping[str, asyncpg.Pool],
    projections: Mapping[str, Sequence[ProjectionSpec]],
    connection: KafkaConnection | str | None,
    now: datetime | None = None,
) -> LagReport:
    """Relay and consumer lag of every service in `pools` (with its `projections`)."""
    now = now or datetime.now(UTC)
    kafka = "not_configured"
    begin: Offsets = {}
    end: Offsets = {}
    if connection:
        topics = [t for specs in projections.values() for s in specs for t in s.projection.topics]
        try:
            if topics:  # no topics: nothing to ask (an empty metadata request means every topic)
                begin, end = await asyncio.wait_for(
                    kafka_offsets(connection, topics), KAFKA_TIMEOUT_S
                )
            kafka = "measured"
        except Exception as exc:  # Kafka down: relay lag is still worth showing
            kafka = f"error: {type(exc).__name__}: {exc}"
    services = []
    for service, pool in pools.items():
        report = ServiceLag(service)
        services.append(report)
        try:
            async with pool.acquire() as conn:
                report.relays = await relay_lag(conn, service, now)
                dead = {
                    r["consumer"]: r["n"]
                    for r in await conn.fetch(
                        "SELECT consumer, count(*) AS n FROM eventkit.dead_letters"
                        " WHERE status = 'open' GROUP BY consumer"
                    )
                }
                for spec in projections.get(service, ()):
                    report.projections.append(
                        await _projection_lag(conn, service, spec, kafka, begin, end, dead, now)
                    )
                parked = {
                    r["consumer"]: (r["streams"], r["held"])
                    for r in await conn.fetch(
                        "SELECT p.consumer, count(*) AS streams, coalesce(sum("
                        " (SELECT count(*) FROM eventkit.dead_letters d"
                        "  WHERE d.held_by = p.first_dead_letter_id AND d.status = 'held')"
                        "), 0)::bigint AS held"
                        " FROM eventkit.parked_streams p GROUP BY p.consumer"
                    )
                }
                for projection in report.projections:
                    projection.parked_streams, projection.held_events = parked.get(
                        projection.consumer, (0, 0)
                    )
                known = {p.consumer for p in report.projections}
                report.other_dead_letters = {c: n for c, n in dead.items() if c not in known}
                report.other_parked_streams = {
                    c: n for c, (n, _) in parked.items() if c not in known
                }
        except asyncpg.PostgresError as exc:
            report.error = f"{type(exc).__name__}: {exc}"
    return LagReport(now, kafka, services)


async def _projection_lag(
    conn: Conn,
    service: str,
    spec: ProjectionSpec,
    kafka: str,
    begin: Offsets,
    end: Offsets,
    dead: Mapping[str, int],
    now: datetime,
) -> ProjectionLag:
    topics = list(spec.projection.topics)
    result = ProjectionLag(
        service, spec.name, spec.consumer, topics, "ok", dead.get(spec.consumer, 0)
    )
    checkpoints = await _checkpoints(conn, check_identifier(spec.name))
    if checkpoints is None:  # never started on this database: nothing to measure
        result.status = "no_schema"
        return result
    if kafka != "measured":
        result.status = "kafka_unknown"
        return result
    for tp in sorted(tp for tp in end if tp.topic in topics):
        saved = checkpoints.get((tp.topic, tp.partition))
        start = saved[0] if saved else begin.get(tp, 0)
        result.partitions.append(
            PartitionLag(
                topic=tp.topic,
                partition=tp.partition,
                end_offset=end[tp],
                next_offset=saved[0] if saved else None,
                lag=max(end[tp] - start, 0),
                checkpoint_at=saved[1] if saved else None,
                checkpoint_age_s=_age(now, saved[1] if saved else None),
            )
        )
    return result


ProjectionSource = Callable[[str, asyncpg.Pool], Awaitable[Sequence[ProjectionSpec]]]


async def declared_projections(service: str, pool: asyncpg.Pool) -> Sequence[ProjectionSpec]:
    """The projections `service` declares (entry point `eventkit.operations`), if installed."""
    offer = discover().get(service_key(service))
    return () if offer is None else tuple(offer.projections(pool))


projection_source: ProjectionSource = declared_projections
"""Where the command gets each service's projections; tests replace it."""


def _fmt_age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


NOTES = {"no_schema": "投影 schema 不存在 / no schema", "kafka_unknown": "未知 unknown"}


def render_table(report: LagReport) -> str:
    """The report for the terminal."""
    when = report.measured_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")
    lines = [
        f"测量时间 measured at {when} (北京时间)",
        "── 出站中继 outbox relay: 已提交未发布的事件 committed, not yet published ──",
        f"{'服务 service':<20} {'中继 relay':<20} {'待发布 pending':>14}  最早未发布 oldest age"
        "   位置 position (tx, seq)",
    ]
    for s in report.services:
        if s.error:
            lines.append(f"{s.service:<20} 错误 error: {s.error}")
        for r in s.relays:
            lines.append(
                f"{s.service:<20} {r.relay or '(未启动 none)':<20} {r.pending:>14}"
                f"  {_fmt_age(r.oldest_pending_age_s):<20} ({r.tx_id}, {r.seq})"
            )
    lines.append("── 投影消费 projection consumer lag (Kafka end − checkpoint) ──")
    if report.kafka == "not_configured":
        lines.append("未配置 Kafka：消费滞后未知 / Kafka not configured: consumer lag unknown")
    elif report.kafka != "measured":
        lines.append(f"Kafka 无法读取，消费滞后未知 / consumer lag unknown ({report.kafka})")
    lines.append(
        f"{'服务 service':<20} {'投影 projection':<28} {'topic[partition]':<40} {'滞后 lag':>9}"
        f" {'末端 end':>9} {'检查点 next':>11}  检查点 age  死信 open DLQ  暂停流 parked"
    )
    for s in report.services:
        for p in s.projections:
            if not p.partitions:
                note = NOTES.get(p.status, "无分区 no partitions")
                lines.append(
                    f"{s.service:<20} {p.projection:<28} {','.join(p.topics):<40} {note}"
                    f"  死信 {p.open_dead_letters}  暂停流 parked {_parked(p)}"
                )
            for i, part in enumerate(p.partitions):
                next_offset = "-" if part.next_offset is None else str(part.next_offset)
                lines.append(
                    f"{s.service:<20} {p.projection:<28} {f'{part.topic}[{part.partition}]':<40}"
                    f" {part.lag:>9} {part.end_offset:>9} {next_offset:>11}"
                    f"  {_fmt_age(part.checkpoint_age_s):<10}"
                    f" {p.open_dead_letters if i == 0 else '':<13}"
                    f" {_parked(p) if i == 0 else ''}"
                )
        for consumer, n in sorted(s.other_dead_letters.items()):
            lines.append(f"{s.service:<20} 其他消费者 consumer {consumer}: 死信 open {n}")
        for consumer, n in sorted(s.other_parked_streams.items()):
            lines.append(f"{s.service:<20} 其他消费者 consumer {consumer}: 暂停流 parked {n}")
    return "\n".join(lines)


def _parked(p: ProjectionLag) -> str:
    return f"{p.parked_streams} (暂扣 held {p.held_events})" if p.parked_streams else "0"


def register(commands: Any) -> None:
    """`ops lag [--service S] [--max-lag N] [--json]`."""
    parser = commands.add_parser(
        "lag", help="中继与投影的滞后 outbox relay lag and projection consumer lag"
    )
    parser.add_argument("--service", default=None, help="one service (default: every configured)")
    parser.add_argument(
        "--max-lag", type=int, default=None, help="exit 1 when any lag exceeds N events"
    )
    parser.add_argument(
        "--max-stall",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit 1 when a relay or consumer is behind and has not moved for SECONDS",
    )
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.set_defaults(handler=handle)


async def handle(ctx: OpsContext, args: argparse.Namespace) -> int:
    """Measure and print; with --max-lag, exit 1 above the threshold."""
    if args.service:
        services = [service_key(args.service)]
        ctx.dsn(services[0])
    else:
        services = [s for s in SERVICES if s in ctx.dsns]
        if not services:
            raise OpsError(
                "no_dsn", "未配置任何服务的数据库 / no service database configured", EXIT_USAGE
            )
    for service in services:
        ctx.touch(service)  # before any refusal, so that it is recorded too
    if args.max_lag is not None and args.max_lag < 0:
        raise OpsError("bad_max_lag", "--max-lag 须为非负整数 / must be 0 or more", EXIT_USAGE)
    if args.max_stall is not None and not args.max_stall > 0:  # also refuses nan
        raise OpsError(
            "bad_max_stall", "--max-stall 须为正数秒 / must be seconds above 0", EXIT_USAGE
        )
    pools = {s: await ctx.pool(s) for s in services}
    projections = {s: await projection_source(s, pools[s]) for s in services}
    report = await measure_lag(pools, projections, ctx.kafka)
    worst = report.max_lag()
    ctx.detail.update({"max_lag": worst, "kafka": report.kafka.split(":")[0]})
    if args.json:
        print(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
    else:
        print(render_table(report))
    if args.max_lag is None and args.max_stall is None:
        return EXIT_OK
    failed = []
    if args.max_lag is not None and worst > args.max_lag:
        failed.append(f"最大滞后 {worst} > {args.max_lag} / lag above the threshold")
    if args.max_stall is not None:
        stalls = report.stalls(args.max_stall)
        ctx.detail["stalled"] = len(stalls)
        failed += [f"停滞 stalled: {stall}" for stall in stalls]
    if report.kafka.startswith("error"):
        failed.append("消费滞后未知 / consumer lag could not be measured")
    if any(s.error for s in report.services):
        failed.append("有服务无法测量 / a service could not be measured")
    for message in failed:
        print(f"告警 [lag] {message}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK
