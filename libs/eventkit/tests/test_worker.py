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
