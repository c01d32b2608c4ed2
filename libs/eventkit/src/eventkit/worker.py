"""A service's worker process: runs relay and consumers, restarts crashed ones, stops cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)

Component = Callable[[asyncio.Event], Awaitable[None]]
"""A long-running part (relay.run, runner.run): returns when the event is set."""


async def supervise(
    components: Mapping[str, Component],
    stop: asyncio.Event,
    *,
    initial_backoff: float = 0.5,
    max_backoff: float = 30.0,
) -> None:
    """Run every component until `stop`; one that raises is logged and restarted with backoff."""

    async def keep_running(name: str, component: Component) -> None:
        backoff = initial_backoff
        while not stop.is_set():
            try:
                await component(stop)
                backoff = initial_backoff
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker component crashed; restarting", extra={"component": name})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, max_backoff)

    async with asyncio.TaskGroup() as group:
        for name, component in components.items():
            group.create_task(keep_running(name, component), name=name)


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop`, so in-flight batches finish before the process exits."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
