"""`ops projections`, `ops rebuild`, `ops dead-letters` and `ops actions` on a real database and a
real Kafka topic, while the projection's live consumer keeps running.

The service under test offers one small projection (eventkit's CountingProjection) through the
same `ServiceOperations` the services publish; the test plugs it in where `discover()` would find
the installed services, so every other part (store, relay, Kafka, consumer, shadow schemas, the
record of each action) is the real one.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import asyncpg
import pytest
from ops import rebuild
from ops.cli import run

from devstack.endpoints import Endpoints
from devstack.testing import create_database, drop_database
from eventkit.consumer import KafkaProjectionRunner
from eventkit.db import create_pool
from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.kafka import TopicSpec, ensure_topics
from eventkit.migrations import migrate
from eventkit.operations import ProjectionSpec, ServiceOperations, recorded_actions
from eventkit.relay import OutboxRelay
from eventkit.replay import shadow_name
from eventkit.store import EventStore
from eventkit.testing import CountingProjection, eventually, unique_name

pytestmark = pytest.mark.integration

META = Metadata(actor=Actor.system("test"))


class Fixed(CountingProjection):
    """The projection after the bug that poisoned an event was fixed."""

    def __init__(self, broken: CountingProjection) -> None:
        super().__init__(broken.name, broken.topics, poison_type="nothing is poison now")


@dataclass
class Rig:
    pool: asyncpg.Pool
    store: EventStore
    projection: CountingProjection
    runner: KafkaProjectionRunner
    offer: Callable[[CountingProjection], None]

    async def fill(self, streams: int, per_stream: int, start: int = 0) -> set[uuid.UUID]:
        ids = set()
        for n in range(start, start + per_stream):
            for s in range(streams):
                event = NewEvent(event_type="Counted", payload={"n": n})
                await self.store.append("thing", f"s-{s}", n, [event], META)
                ids.add(event.event_id)
        return ids

    async def applied(self) -> dict[uuid.UUID, int]:
        rows = await self.pool.fetch(
            f'SELECT event_id, times FROM "{self.projection.name}".applied'
        )
        return {r["event_id"]: r["times"] for r in rows}

    async def until_applied(self, expected: set[uuid.UUID]) -> None:
        async def done() -> bool:
            try:
                return set(await self.applied()) >= expected
            except asyncpg.UndefinedTableError:
                return False

        await eventually(done, timeout=60)


@pytest.fixture
async def rig(stack: Endpoints, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    name = f"t_opsrb_{uuid.uuid4().hex[:8]}"
    dsn = await create_database(stack, name)
    await migrate(dsn, "review")
    pool = await create_pool(dsn, min_size=1, max_size=4)
    topic = unique_name("opsrb")
    await ensure_topics(stack.kafka_bootstrap, [TopicSpec(topic, partitions=3)])
    projection = CountingProjection(unique_name("proj"), (topic,))
    offered: list[Sequence[ProjectionSpec]] = []

    def offer(current: CountingProjection) -> None:
        policy = CountingProjection(unique_name("policy"), (topic,))
        offered[:] = [
            (
                ProjectionSpec(current, own_stream_types=("thing",)),
                ProjectionSpec(policy, rebuildable=False),
            )
        ]

    offer(projection)
    services = {"review": ServiceOperations("review", lambda _pool: offered[0])}
    monkeypatch.setattr(rebuild, "discover", lambda: services)
    monkeypatch.delenv("DEVSTACK_PG_HOST", raising=False)
    for key in ("OPS_PG_DSN_IDENTITY", "OPS_PG_DSN_APPLICATION", "OPS_PG_DSN_MEDIA",
                "OPS_PG_DSN_CREDENTIAL_VERIFY", "EVENTKIT_KAFKA_BOOTSTRAP"):  # fmt: skip
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("OPS_PG_DSN_REVIEW", dsn)
    monkeypatch.setenv("OPS_KAFKA_BOOTSTRAP", stack.kafka_bootstrap)
    monkeypatch.setenv("OPS_OPERATOR", "ops.admin")

    relay = OutboxRelay(pool, {"thing": topic}.get, name="relay", bootstrap=stack.kafka_bootstrap)
    runner = KafkaProjectionRunner(pool, projection, bootstrap=stack.kafka_bootstrap)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(relay.run(stop)), asyncio.create_task(runner.run(stop))]
    try:
        yield Rig(pool, EventStore(pool), projection, runner, offer)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await pool.close()
        await drop_database(stack, name)


async def actions(rig: Rig) -> list[tuple[str, str, str]]:
    """(command, outcome, operator) of the recorded actions, oldest first."""
    return [
        (e.payload["command"], e.payload["outcome"], e.actor.id)
        for e in reversed(await recorded_actions(rig.pool))
    ]


async def test_projections_are_listed_from_the_installed_services(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert await run(["projections", "--json"]) == 0
    rows = {(r["service"], r["projection"]): r for r in json.loads(capsys.readouterr().out)}
    assert {"review_queue", "review_submissions", "media_usage", "credential_candidates",
            "application_evidence"} <= {p for _, p in rows}  # fmt: skip
    assert rows[("application", "application_review_policy")]["rebuildable"] is False
    assert rows[("review", "review_queue")]["consumer"] == "projection.review_queue"


async def test_a_rebuild_verifies_swaps_and_the_live_consumer_goes_on(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    committed = await rig.fill(4, 10)
    await rig.until_applied(committed)

    assert await run(["rebuild", "review", rig.projection.name, "--verify"]) == 0
    out = capsys.readouterr().out
    assert "40 条事件重放" in out and "一致" in out
    assert not await rig.pool.fetchval(
        "SELECT count(*) FROM pg_namespace WHERE nspname = $1", shadow_name(rig.projection)
    ), "the shadow is dropped after a verify without --swap"

    # a live row the events do not explain: verify says so, with the rows on each side
    await rig.pool.execute(
        f'UPDATE "{rig.projection.name}".stream_totals SET total = 999 WHERE stream_id = $1', "s-2"
    )
    assert await run(["rebuild", "review", rig.projection.name, "--verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["equal"] is False
    [diff] = report["differences"]
    assert diff["table"] == "stream_totals" and diff["samples_live"][0]["total"] == 999

    # swap the rebuilt shadow in while events keep arriving; nothing lost, nothing doubled
    more = await rig.fill(4, 5, start=10)
    assert await run(["rebuild", "review", rig.projection.name, "--swap"]) == 0
    assert "已切换" in capsys.readouterr().out
    later = await rig.fill(4, 5, start=15)
    everything = committed | more | later
    await rig.until_applied(everything)
    counts = await rig.applied()
    assert set(counts) == everything and set(counts.values()) == {1}
    assert await rig.pool.fetchval(
        f'SELECT total FROM "{rig.projection.name}".stream_totals WHERE stream_id = $1', "s-2"
    ) == sum(range(20))
    assert await run(["rebuild", "review", rig.projection.name, "--verify"]) == 0

    # from the service's own store, for a projection that reads only its own streams
    assert await run(["rebuild", "review", rig.projection.name, "--from", "store",
                      "--verify"]) == 0  # fmt: skip
    assert "(store)" in capsys.readouterr().err

    recorded = await actions(rig)
    assert [(c, o) for c, o, _ in recorded] == [
        ("rebuild", "ok"), ("rebuild", "failed"), ("rebuild", "ok"), ("rebuild", "ok"),
        ("rebuild", "ok"),
    ]  # fmt: skip
    assert {who for _, _, who in recorded} == {"ops.admin"}
    [latest] = await recorded_actions(rig.pool, limit=1)
    assert latest.payload["arguments"]["source"] == "store"
    assert latest.payload["detail"]["equal"] is True and latest.actor.kind == "ops"


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["rebuild", "nosuch", "x"], "unknown_service", "没有这个服务"),
        (["rebuild", "review", "nosuch"], "unknown_projection", "没有投影"),
        (["rebuild", "review", "{policy}"], "not_rebuildable", "策略"),
        (["dead-letters", "show", "review", "424242"], "no_dead_letter", "没有死信"),
        (["dead-letters", "retry", "review", "424242"], "no_dead_letter", "没有死信"),
        (["dead-letters", "discard", "review", "424242"], "discard_refused", "不能丢弃"),
        (["actions", "--since", "yesterday"], "bad_time", "时间格式不对"),
        (["actions", "--limit", "0"], "bad_limit", "--limit"),
    ],
)
async def test_bad_requests_are_refused_with_a_code_and_recorded(
    rig: Rig,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    code: str,
    message: str,
) -> None:
    policy = [s for s in rebuild.discover()["review"].projections(rig.pool) if not s.rebuildable]
    argv = [a.replace("{policy}", policy[0].name) for a in argv]
    assert await run(argv) in (1, 2)
    err = capsys.readouterr().err
    assert f"[{code}]" in err and message in err
    if argv[1] != "nosuch" and argv[0] != "actions":
        [latest] = await recorded_actions(rig.pool, limit=1)
        assert latest.payload["outcome"] in ("refused", "failed")
        assert latest.payload["detail"]["error"] == code


async def test_missing_configuration_is_refused(
    rig: Rig, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPS_KAFKA_BOOTSTRAP")
    assert await run(["rebuild", "review", rig.projection.name]) == 2
    assert "[no_kafka]" in capsys.readouterr().err
    monkeypatch.delenv("OPS_PG_DSN_REVIEW")
    assert await run(["dead-letters", "list", "--service", "review"]) == 2
    assert "[no_dsn]" in capsys.readouterr().err
    monkeypatch.setenv("OPS_OPERATOR", " ")
    assert await run(["actions"]) == 2
    assert "[no_operator]" in capsys.readouterr().err


async def test_dead_letters_are_listed_shown_retried_after_a_fix_and_discarded(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    good = await rig.fill(2, 3)
    poison = [NewEvent(event_type="Poison", payload={"n": n}) for n in range(2)]
    for n, event in enumerate(poison):
        await rig.store.append("thing", f"bad-{n}", 0, [event], META)
    good |= await rig.fill(2, 2, start=3)
    await rig.until_applied(good)

    async def letters() -> list[dict[str, object]]:
        assert await run(["dead-letters", "list", "--json"]) == 0
        return list(json.loads(capsys.readouterr().out))

    await eventually(lambda: _count(letters, 2), timeout=30)
    listed = await letters()
    assert {r["event_type"] for r in listed} == {"Poison"}
    assert {r["consumer"] for r in listed} == {rig.runner.group_id}
    first, second = sorted(int(str(r["id"])) for r in listed)

    assert await run(["dead-letters", "show", "review", str(first), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert "poison event" in shown["error"] and shown["event"]["event_type"] == "Poison"

    # still broken: the retry fails, the letter stays open
    assert await run(["dead-letters", "retry", "review", str(first)]) == 1
    assert "[retry_failed]" in capsys.readouterr().err
    assert len(await letters()) == 2

    # after the fix it applies, exactly once; a second retry is refused
    rig.offer(Fixed(rig.projection))
    assert await run(["dead-letters", "retry", "review", str(first)]) == 0
    assert "已应用" in capsys.readouterr().out
    counts = await rig.applied()
    assert counts[poison[0].event_id] == 1
    assert await run(["dead-letters", "retry", "review", str(first)]) == 1
    assert "not open" in capsys.readouterr().err

    assert await run(["dead-letters", "discard", "review", str(second)]) == 0
    assert "已丢弃" in capsys.readouterr().out
    assert await letters() == []
    assert await run(["dead-letters", "list", "--status", "all", "--json"]) == 0
    statuses = {r["id"]: r["status"] for r in json.loads(capsys.readouterr().out)}
    assert statuses == {first: "retried", second: "discarded"}
    resolved = await rig.pool.fetch(
        "SELECT resolved_by FROM eventkit.dead_letters WHERE id = ANY($1::bigint[])",
        [first, second],
    )
    assert {r["resolved_by"] for r in resolved} == {"ops.admin"}

    assert await run(["actions", "--json"]) == 0
    recorded = json.loads(capsys.readouterr().out)
    commands = [(r["command"], r["outcome"]) for r in reversed(recorded)]
    assert ("dead-letters retry", "failed") in commands
    assert ("dead-letters retry", "ok") in commands
    assert ("dead-letters discard", "ok") in commands
    retried = next(r for r in recorded if r["command"] == "dead-letters retry"
                   and r["outcome"] == "ok")  # fmt: skip
    assert retried["operator"] == "ops.admin" and retried["detail"]["applied"] is True
    assert retried["arguments"] == {"service": "review", "id": first}


async def _count(letters: Callable[[], object], expected: int) -> bool:
    rows = await letters()  # type: ignore[misc]
    return len(rows) == expected


async def test_a_parked_stream_shows_in_lag_and_dead_letters_and_a_retry_unparks_it(
    rig: Rig, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ops import lag

    monkeypatch.setattr(lag, "discover", rebuild.discover)  # the rig's service, for `ops lag`
    poison, later = (
        NewEvent(event_type="Poison", payload={"n": 1}),
        NewEvent(event_type="Counted", payload={"n": 2}),
    )
    await rig.store.append("thing", "parked-1", 0, [poison], META)
    await rig.store.append("thing", "parked-1", 1, [later], META)
    good = await rig.fill(2, 2)
    await rig.until_applied(good)

    async def letters() -> list[dict[str, object]]:
        assert await run(["dead-letters", "list", "--json"]) == 0
        return list(json.loads(capsys.readouterr().out))

    await eventually(lambda: _count(letters, 2), timeout=30)
    listed = {r["status"]: r for r in await letters()}
    head, held = listed["open"], listed["held"]
    assert head["event_id"] == str(poison.event_id) and head["parks_stream"] is True
    assert held["event_id"] == str(later.event_id) and held["held_by"] == head["id"]
    assert held["error_type"] == "StreamParked" and held["stream"] == "thing/parked-1"
    assert later.event_id not in await rig.applied()
    assert await run(["dead-letters", "list"]) == 0
    assert f"waits for #{head['id']}" in capsys.readouterr().out

    assert await run(["lag", "--service", "review", "--json"]) == 0
    [service] = json.loads(capsys.readouterr().out)["services"]
    live = next(p for p in service["projections"] if p["projection"] == rig.projection.name)
    assert (live["open_dead_letters"], live["parked_streams"], live["held_events"]) == (1, 1, 1)
    assert await run(["lag", "--service", "review"]) == 0
    assert "1 (暂扣 held 1)" in capsys.readouterr().out

    # discarding the head would strand the held event: refused without --apply-held
    assert await run(["dead-letters", "discard", "review", str(head["id"])]) == 1
    assert "--apply-held" in capsys.readouterr().err

    rig.offer(Fixed(rig.projection))
    assert await run(["dead-letters", "retry", "review", str(head["id"])]) == 0
    out = capsys.readouterr().out
    assert "已应用 applied" in out and "stream unparked" in out
    counts = await rig.applied()
    assert counts[poison.event_id] == 1 and counts[later.event_id] == 1
    assert await letters() == []
    assert await run(["lag", "--service", "review", "--json"]) == 0
    [service] = json.loads(capsys.readouterr().out)["services"]
    live = next(p for p in service["projections"] if p["projection"] == rig.projection.name)
    assert (live["open_dead_letters"], live["parked_streams"], live["held_events"]) == (0, 0, 0)
