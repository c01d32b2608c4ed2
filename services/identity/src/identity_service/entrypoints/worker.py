"""Identity's worker: creates its topics and relays its committed events to Kafka."""

from __future__ import annotations

import asyncio

from contracts.identity import CANDIDATE_STREAM, STAFF_STREAM
from eventkit.migrations import migrate
from eventkit.worker import run_service_worker
from identity_service.bootstrap import MIGRATIONS

# Published streams and their topics; anything else (the roster's import log) stays private.
ROUTES = {stream.stream_type: stream.topic for stream in (CANDIDATE_STREAM, STAFF_STREAM)}


def route(stream_type: str) -> str | None:
    """The topic of a stream type, or None for identity's private streams."""
    return ROUTES.get(stream_type)


async def prepare(dsn: str) -> None:
    """Bring identity's schema up to date."""
    await migrate(dsn, "identity", MIGRATIONS)


async def run() -> None:
    """Run until SIGTERM or SIGINT."""
    await run_service_worker("identity", ROUTES, prepare=prepare, pool_size=4)


def main() -> None:
    """Entry point of `python -m identity_service.entrypoints.worker`."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
