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
