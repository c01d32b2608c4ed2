"""The worker supervisor restarts crashed components and stops on request."""

from __future__ import annotations

import asyncio

import pytest

from eventkit.worker import supervise

pytestmark = pytest.mark.unit


async def test_a_crashed_component_is_restarted_and_all_stop_together() -> None:
    stop = asyncio.Event()
    starts = {"flaky": 0, "steady": 0}

    async def flaky(stop: asyncio.Event) -> None:
        starts["flaky"] += 1
        if starts["flaky"] < 3:
            raise RuntimeError("boom")
        await stop.wait()

    async def steady(stop: asyncio.Event) -> None:
        starts["steady"] += 1
        await stop.wait()

    task = asyncio.create_task(
        supervise({"flaky": flaky, "steady": steady}, stop, initial_backoff=0.01)
    )
    for _ in range(200):
        if starts["flaky"] >= 3:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert starts == {"flaky": 3, "steady": 1}


async def test_the_health_endpoint_reports_a_component_down_too_long_and_serves_metrics() -> None:
    import httpx

    from eventkit.health import WorkerHealth, serve_health
    from servicekit.testing import free_port

    stop = asyncio.Event()
    health = WorkerHealth(down_after=0.2)
    port = free_port()
    failing = asyncio.Event()

    async def steady(stop: asyncio.Event) -> None:
        await stop.wait()

    async def broken(stop: asyncio.Event) -> None:
        if failing.is_set():
            raise RuntimeError("database gone")
        await stop.wait()

    async def endpoint(stop: asyncio.Event) -> None:
        await serve_health(health, "127.0.0.1", port, stop)

    failing.set()
    task = asyncio.create_task(
        supervise(
            {"steady": steady, "broken": broken, "health": endpoint},
            stop,
            initial_backoff=0.05,
            max_backoff=0.05,
            health=health,
        )
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(100):
                try:
                    answer = await client.get("/healthz")
                    if answer.status_code == 503:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            assert answer.status_code == 503
            body = answer.json()
            assert body["status"] == "down"
            assert body["components"]["steady"]["running"] is True
            broken_state = body["components"]["broken"]
            assert broken_state["down"] is True and broken_state["restarts"] >= 2
            assert "database gone" in broken_state["last_error"]

            failing.clear()  # the cause is fixed: the next restart runs on
            for _ in range(100):
                answer = await client.get("/healthz")
                if answer.status_code == 200:
                    break
                await asyncio.sleep(0.05)
            assert answer.status_code == 200 and answer.json()["status"] == "ok"

            metrics = await client.get("/metrics")
            assert metrics.status_code == 200 and "python_info" in metrics.text
            assert (await client.get("/nope")).status_code == 404
            assert (await client.post("/healthz")).status_code == 404
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


async def test_a_component_that_stops_making_progress_is_cancelled_and_restarted() -> None:
    from eventkit.health import WorkerHealth, beat
    from eventkit.worker import every

    stop = asyncio.Event()
    health = WorkerHealth(down_after=60, stall_after=0.3)
    starts = {"stuck": 0, "quiet": 0}
    cancelled = asyncio.Event()
    hang = asyncio.Event()
    swept = []

    async def stuck(stop: asyncio.Event) -> None:
        """Beats for a while, then waits on something that never comes (first run only)."""
        starts["stuck"] += 1
        for _ in range(3):
            beat()
            await asyncio.sleep(0.01)
        if starts["stuck"] == 1:
            try:
                await hang.wait()
            except asyncio.CancelledError:
                cancelled.set()
                raise
        while not stop.is_set():
            beat()
            await asyncio.sleep(0.05)

    async def quiet(stop: asyncio.Event) -> None:
        """Never reports progress: never judged on it (the health endpoint is such a one)."""
        starts["quiet"] += 1
        await stop.wait()

    async def sweep() -> None:
        swept.append(1)

    task = asyncio.create_task(
        supervise(
            {"stuck": stuck, "quiet": quiet, "sweep": every(0.05, sweep)},
            stop,
            initial_backoff=0.01,
            health=health,
        )
    )
    try:
        await asyncio.wait_for(cancelled.wait(), timeout=5)
        for _ in range(200):
            if starts["stuck"] >= 2:
                break
            await asyncio.sleep(0.01)
        assert starts["stuck"] == 2
        state = health.components["stuck"]
        assert state.restarts == 1 and "no progress for" in (state.last_error or "")
        await asyncio.sleep(0.6)  # beyond stall_after twice: the restarted one keeps beating
        assert starts == {"stuck": 2, "quiet": 1}
        assert health.components["sweep"].beats >= 5 and health.components["sweep"].restarts == 0
        assert health.stalled_for("quiet") is None
        report = health.report()["components"]
        assert isinstance(report, dict) and report["quiet"]["seconds_since_progress"] is None
        assert report["stuck"]["seconds_since_progress"] < 0.3
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


def test_progress_outside_a_supervised_component_is_ignored() -> None:
    from eventkit.health import WorkerHealth, beat, reporting_progress

    beat()  # no supervisor: nothing to report to, no error
    health = WorkerHealth(stall_after=10)
    with reporting_progress(health, "relay"):
        beat()
    beat()
    assert health.components["relay"].beats == 1
    assert health.stalled_for("relay") is None  # not running: never stalled


async def test_a_component_sleeping_longer_than_the_stall_limit_is_not_stalled() -> None:
    """Liveness does not depend on how long a component sleeps between turns: a sweep every
    0.5 s under a 0.1 s stall limit runs on, never cancelled (the sweeper's 300 s sleep under
    the 300 s limit was killed as stalled)."""
    from eventkit.health import WorkerHealth
    from eventkit.worker import every

    stop = asyncio.Event()
    health = WorkerHealth(down_after=60, stall_after=0.1)
    runs: list[float] = []

    async def sweep() -> None:
        runs.append(asyncio.get_running_loop().time())

    task = asyncio.create_task(
        supervise({"sweeper": every(0.5, sweep)}, stop, initial_backoff=0.01, health=health)
    )
    try:
        await asyncio.sleep(1.3)
        state = health.components["sweeper"]
        assert state.restarts == 0, state.last_error
        assert len(runs) == 3  # at 0, 0.5 and 1.0 s: each sleep ran its full length
        assert health.healthy()
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


async def test_a_component_that_hangs_after_its_declared_rest_is_still_restarted() -> None:
    """A rest is declared, not a blanket pass: the stall clock starts again when it ends."""
    from eventkit.health import WorkerHealth, beat, pause

    stop = asyncio.Event()
    health = WorkerHealth(down_after=60, stall_after=0.1)
    starts = 0
    woke = asyncio.Event()

    async def napper(stop: asyncio.Event) -> None:
        nonlocal starts
        starts += 1
        beat()
        if starts == 1:
            await pause(stop, 0.4)  # four stall limits asleep: fine
            woke.set()
            await asyncio.Event().wait()  # then stuck for good: a stall
        await stop.wait()

    task = asyncio.create_task(
        supervise({"napper": napper}, stop, initial_backoff=0.01, health=health)
    )
    try:
        await asyncio.wait_for(woke.wait(), timeout=5)
        assert health.components["napper"].restarts == 0
        for _ in range(100):
            if starts == 2:
                break
            await asyncio.sleep(0.02)
        state = health.components["napper"]
        assert starts == 2 and state.restarts == 1
        assert "no progress for" in (state.last_error or "")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


# --- start-up: waits for PostgreSQL and Kafka, exits on misconfiguration ---------------------


class _FakePool:
    closed = False

    async def close(self) -> None:
        self.closed = True


@pytest.fixture
def fast_startup(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """run_service_worker with its PostgreSQL and Kafka steps replaced by fakes (counted), no
    signal handlers, and a supervisor that returns at once."""
    from eventkit import worker
    from eventkit.backoff import Backoff

    seen: dict[str, object] = {"pool": _FakePool(), "supervised": None}
    monkeypatch.setattr(worker, "Backoff", lambda **_: Backoff(initial=0.001, cap=0.005))
    monkeypatch.setattr(worker, "install_signal_handlers", lambda stop: seen.update(stop=stop))
    monkeypatch.setattr(worker, "configure_logging", lambda *a, **k: None)

    async def fake_supervise(components, stop, **_):  # type: ignore[no-untyped-def]
        seen["supervised"] = sorted(components)

    async def fake_pool(dsn: str, **_: object) -> _FakePool:
        return seen["pool"]  # type: ignore[return-value]

    monkeypatch.setattr(worker, "supervise", fake_supervise)
    monkeypatch.setattr(worker, "create_pool", fake_pool)
    return seen


def _failing(times: int, exc: BaseException, result: object = None):  # type: ignore[no-untyped-def]
    calls = {"n": 0}

    async def attempt(*_: object, **__: object) -> object:
        calls["n"] += 1
        if calls["n"] <= times:
            raise exc
        return result

    return attempt, calls


async def test_start_up_waits_for_postgresql_and_kafka_then_runs(
    fast_startup: dict[str, object],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    import errno

    from aiokafka.errors import KafkaConnectionError

    from eventkit import worker

    prepare, prepared = _failing(3, ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    topics, created = _failing(2, KafkaConnectionError("no broker"), result=["t"])
    monkeypatch.setattr(worker, "ensure_topics", topics)
    with caplog.at_level("WARNING", logger="eventkit.worker"):
        await asyncio.wait_for(
            worker.run_service_worker("svc", {"thing": "t"}, prepare=prepare), timeout=10
        )
    assert prepared["n"] == 4 and created["n"] == 3
    assert fast_startup["supervised"] == ["relay"]
    assert fast_startup["pool"].closed  # type: ignore[attr-defined]
    waits = [r for r in caplog.records if r.getMessage().startswith("waiting for")]
    assert len(waits) == 5
    assert {getattr(r, "cause", None) for r in waits} == {
        "ConnectionRefusedError", "KafkaConnectionError"
    }  # fmt: skip


async def test_start_up_exits_on_a_wrong_password_without_retrying(
    fast_startup: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    import asyncpg

    from eventkit import worker

    prepare, prepared = _failing(99, asyncpg.exceptions.InvalidPasswordError("bad password"))
    with (
        caplog.at_level("ERROR", logger="eventkit.worker"),
        pytest.raises(asyncpg.exceptions.InvalidPasswordError),
    ):
        await worker.run_service_worker("svc", {}, prepare=prepare)
    assert prepared["n"] == 1 and fast_startup["supervised"] is None
    assert any("cannot start" in r.getMessage() for r in caplog.records)


async def test_stop_during_start_up_ends_the_worker_cleanly(
    fast_startup: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventkit import worker

    prepare, prepared = _failing(10**6, ConnectionResetError("reset"))
    # SIGTERM 50 ms into a start-up PostgreSQL never lets finish
    monkeypatch.setattr(
        worker,
        "install_signal_handlers",
        lambda stop: asyncio.get_running_loop().call_later(0.05, stop.set),
    )
    await asyncio.wait_for(worker.run_service_worker("svc", {}, prepare=prepare), timeout=10)
    assert prepared["n"] > 1 and fast_startup["supervised"] is None


async def test_a_periodic_task_failing_for_a_transient_reason_runs_again_without_crashing() -> None:
    """Found by the fault lane: a sweep whose database was restarting crashed to the supervisor
    (an error and a restart each time). A transient failure now waits for the next run; a bug
    still crashes."""
    import asyncpg

    from eventkit.worker import every

    calls: list[str] = []

    async def sweep() -> None:
        calls.append("run")
        if len(calls) <= 2:
            raise ConnectionResetError(104, "Connection reset by peer")
        if len(calls) == 3:
            raise asyncpg.exceptions.CannotConnectNowError("the database system is starting up")

    stop = asyncio.Event()
    task = asyncio.create_task(every(0.01, sweep)(stop))
    while len(calls) < 5:
        await asyncio.sleep(0.01)
        assert not task.done(), task.exception() if task.done() else None
    stop.set()
    await task

    async def buggy() -> None:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        await every(0.01, buggy)(asyncio.Event())
