"""What the ops tests share: contract events from their schema's example, event stores of the
services on fresh databases, appending to them, and reading back the recorded ops actions."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from devstack.endpoints import Endpoints
from devstack.testing import create_database, drop_database
from eventkit.db import create_pool
from eventkit.envelope import Actor, EventEnvelope, Metadata, NewEvent
from eventkit.migrations import migrate
from eventkit.operations import recorded_actions
from eventkit.store import EventStore


def event(model: Any, **changes: Any) -> Any:
    """A contract event: its schema's first example with `changes`."""
    example = model.model_json_schema()["examples"][0]
    return model.model_validate({**example, **changes})


@asynccontextmanager
async def event_stores(
    stack: Endpoints, services: Iterable[str], prefix: str
) -> AsyncIterator[dict[str, str]]:
    """A fresh database with eventkit's tables per service (service → DSN), dropped after."""
    tag = uuid.uuid4().hex[:8]
    names = {s: f"t_{prefix}_{s[:4]}_{tag}" for s in services}
    dsns = {s: await create_database(stack, n) for s, n in names.items()}
    try:
        for service, dsn in dsns.items():
            await migrate(dsn, service)
        yield dsns
    finally:
        for name in names.values():
            await drop_database(stack, name)


async def append(
    dsn: str,
    stream: Any,
    stream_id: Any,
    events: list[Any],
    actor: Actor | None = None,
    correlation: uuid.UUID | None = None,
) -> list[EventEnvelope]:
    """Append contract events to a stream of `stream`'s type, after whatever it holds."""
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        store = EventStore(pool)
        version = await store.version(stream.stream_type, str(stream_id))
        return await store.append(
            stream.stream_type,
            str(stream_id),
            version,
            [NewEvent.of(e) for e in events],
            Metadata(
                actor=actor or Actor.system("test"), correlation_id=correlation or uuid.uuid4()
            ),
        )
    finally:
        await pool.close()


async def actions(dsn: str) -> list[tuple[str, str]]:
    """(command, outcome) of the ops actions recorded in a store, newest first."""
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        return [(e.payload["command"], e.payload["outcome"]) for e in await recorded_actions(pool)]
    finally:
        await pool.close()
