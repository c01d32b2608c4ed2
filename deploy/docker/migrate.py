"""Apply one service's migrations and projection schemas, then exit (the pre-rollout Job).

Usage inside the image: ``python /app/migrate.py <service>``. It runs exactly what the service's
worker runs before it starts (``prepare(dsn)``), under eventkit's advisory lock, with the DSN
from ``EVENTKIT_PG_DSN``; a non-zero exit stops the rollout before any new pod starts.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from collections.abc import Awaitable, Callable

from eventkit.settings import PlatformSettings

PACKAGES = {
    "identity": "identity_service",
    "credential-verify": "credential_verify_service",
    "media": "media_service",
    "application": "application_service",
    "review": "review_service",
}


def preparer(service: str) -> Callable[[str], Awaitable[None]]:
    """The worker's own preparation step: `worker.prepare`, else `bootstrap.prepare_database`."""
    package = PACKAGES[service]
    worker = importlib.import_module(f"{package}.entrypoints.worker")
    prepare = getattr(worker, "prepare", None)
    if prepare is None:
        prepare = importlib.import_module(f"{package}.bootstrap").prepare_database
    return prepare  # type: ignore[no-any-return]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in PACKAGES:
        print(f"usage: migrate.py {{{'|'.join(PACKAGES)}}}", file=sys.stderr)
        return 2
    dsn = PlatformSettings().pg_dsn.get_secret_value()
    asyncio.run(preparer(argv[0])(dsn))
    print(f"{argv[0]}: migrations applied")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
