"""A service's worker process: runs relay and consumers, restarts crashed ones, stops cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

import asyncpg

from eventkit.backoff import Backoff
from eventkit.db import create_pool
from eventkit.health import WorkerHealth, beat, pause, reporting_progress, serve_health
from eventkit.kafka import TopicSpec, ensure_topics
from eventkit.logs import configure_logging
from eventkit.relay import OutboxRelay
from eventkit.settings import PlatformSettings
from eventkit.transient import describe, is_transient

log = logging.getLogger(__name__)

Component = Callable[[asyncio.Event], Awaitable[None]]
"""A long-running part (relay.run, runner.run): returns when the event is set."""


async def supervise(
    components: Mapping[str, Component],
    stop: asyncio.Event,
    *,
    initial_backoff: float = 0.5,
    max_backoff: float = 30.0,
    health: WorkerHealth | None = None,
) -> None:
    """Run every component until `stop`; one that raises is logged and restarted with backoff.

    `health`, when given, learns each start and crash (the worker's /healthz reads it), and
    hears the components' progress (`eventkit.health.beat`): with `health.stall_after` set, a
    component that has reported progress before and then goes that long without it is
    cancelled and restarted as if it had crashed (`ComponentStalled`)."""

    async def keep_running(name: str, component: Component) -> None:
        backoff = initial_backoff
        while not stop.is_set():
            try:
                if health is not None:
                    health.started(name)
                    with reporting_progress(health, name):
                        await _watched(name, component(stop), health)
                else:
                    await component(stop)
                backoff = initial_backoff
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if health is not None:
                    health.crashed(name, exc)
                log.exception("worker component crashed; restarting", extra={"component": name})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=backoff)
                backoff = min(backoff * 2, max_backoff)

    async with asyncio.TaskGroup() as group:
        for name, component in components.items():
            group.create_task(keep_running(name, component), name=name)


class ComponentStalled(RuntimeError):
    """A component that reports progress went longer than `stall_after` without it."""


async def _watched(name: str, run: Awaitable[None], health: WorkerHealth) -> None:
    """Await a component; cancel it and raise `ComponentStalled` when its progress stops."""
    task = asyncio.ensure_future(run)
    if health.stall_after is None:
        await task
        return
    check_every = max(health.stall_after / 4, 0.01)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=check_every)
            if done:
                task.result()
                return
            idle = health.stalled_for(name)
            if idle is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                raise ComponentStalled(f"no progress for {idle:.0f}s; cancelled it")
    finally:
        if not task.done():  # the supervisor itself is being cancelled
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def install_signal_handlers(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set `stop`, so in-flight batches finish before the process exits."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)


def every(interval: float, task: Callable[[], Awaitable[object]]) -> Component:
    """A component running `task` every `interval` seconds until stopped (sweeps, expiries).

    The wait between runs is a declared rest (`eventkit.health.pause`): an interval longer than
    the supervisor's stall limit is not a stall. A run that fails for a transient reason (the
    database away, a dropped connection) is logged as a warning and tried again at the next
    interval, not a crash (the fault lane saw sweeps crash on every PostgreSQL restart)."""

    async def run(stop: asyncio.Event) -> None:
        while not stop.is_set():
            beat()
            try:
                await task()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning(
                    "periodic task failed for a transient reason; next run in %.0fs",
                    interval,
                    extra={"cause": describe(exc)},
                )
            if await pause(stop, interval):
                return

    return run


T = TypeVar("T")


class StartAbandoned(Exception):
    """`stop` was set while the worker was still waiting for PostgreSQL or Kafka."""


async def until_reachable(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    stop: asyncio.Event,
    *,
    backoff: Backoff | None = None,
) -> T:
    """`attempt()` until it succeeds; a transient failure (PostgreSQL or Kafka not reachable
    yet, `eventkit.transient`) is logged and tried again with backoff (0.5 s doubling to 15 s,
    jitter). A permanent one (a wrong password 28P01, a missing database 3D000, Kafka refusing
    the credentials or the CA, a bad migration) is logged and raised: retrying cannot fix it and
    the process should exit and say so. Raises `StartAbandoned` when `stop` is set first."""
    backoff = backoff or Backoff(initial=0.5, cap=15.0)
    while True:
        try:
            return await attempt()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_transient(exc):
                log.error(
                    "cannot start: %s failed and retrying will not help",
                    what,
                    extra={"step": what, "cause": describe(exc)},
                    exc_info=True,
                )
                raise
            delay = backoff.next_delay()
            log.warning(
                "waiting for %s",
                what,
                extra={
                    "step": what,
                    "cause": describe(exc),
                    "error": str(exc)[:300],
                    "attempt": backoff.attempts,
                    "retry_in_s": round(delay, 3),
                },
            )
            if await pause(stop, delay):
                raise StartAbandoned(what) from exc


Extras = Callable[
    [asyncpg.Pool, PlatformSettings], AbstractAsyncContextManager[Mapping[str, Component]]
]
"""The service's own components beside the relay, built on the worker's pool, closed after."""


async def run_service_worker(
    name: str,
    routes: Mapping[str, str],
    *,
    prepare: Callable[[str], Awaitable[None]],
    consumed_topics: Sequence[str] = (),
    extras: Extras | None = None,
    pool_size: int = 6,
) -> None:
    """The worker process of a service, until SIGTERM or SIGINT.

    Prepares the database (`prepare(dsn)`: migrations, projection schemas), creates the topics
    it publishes (`routes`: stream type -> topic; other streams stay private) and consumes, then
    supervises the outbox relay and the service's `extras`.

    PostgreSQL or Kafka not reachable at start (a transient failure) is waited out, each step
    retried with backoff and logged, so a worker started before its database or brokers comes
    up when they do; SIGTERM meanwhile ends it cleanly. A permanent failure (a wrong password,
    a missing database, rejected Kafka credentials) is logged and ends the process: see
    `until_reachable`.
    """
    platform = PlatformSettings()
    configure_logging(f"{name}-worker", platform.log_level, json_lines=platform.log_json)
    dsn = platform.pg_dsn.get_secret_value()
    stop = asyncio.Event()
    install_signal_handlers(stop)
    topics = sorted({*routes.values(), *consumed_topics})
    kafka = platform.kafka_connection
    log.info("kafka connection", extra={"kafka": kafka.describe()})
    try:
        await until_reachable("PostgreSQL (prepare)", lambda: prepare(dsn), stop)
        created = await until_reachable(
            "Kafka (topics)",
            lambda: ensure_topics(
                kafka,
                [TopicSpec(t, platform.topic_partitions, platform.topic_replication)
                 for t in topics],
            ),
            stop,
        )  # fmt: skip
        if created:
            log.info("topics created", extra={"topics": created})
        pool = await until_reachable(
            "PostgreSQL (pool)", lambda: create_pool(dsn, min_size=2, max_size=pool_size), stop
        )
    except StartAbandoned as abandoned:
        log.info("stopped before start-up finished", extra={"step": str(abandoned)})
        return
    relay = OutboxRelay(
        pool,
        routes.get,
        name=name,
        bootstrap=kafka,
        batch_size=platform.relay_batch_size,
    )
    try:
        async with contextlib.AsyncExitStack() as stack:
            own = await stack.enter_async_context(extras(pool, platform)) if extras else {}
            health = WorkerHealth(
                down_after=platform.health_down_after, stall_after=platform.health_stall_after
            )
            components: dict[str, Component] = {"relay": relay.run, **own}
            if platform.health_port is not None:
                log.info("health endpoint", extra={"port": platform.health_port})
                health_port = platform.health_port

                async def endpoint(stop: asyncio.Event) -> None:
                    await serve_health(health, platform.health_host, health_port, stop)

                components["health"] = endpoint
            await supervise(components, stop, health=health)
    finally:
        await pool.close()
