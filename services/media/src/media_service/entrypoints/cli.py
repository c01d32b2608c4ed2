"""`media` command line: ops tasks of the media service (migrations, sweeps, storage audit)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit.db import create_pool
from eventkit.logs import configure_logging
from eventkit.settings import refuse_development_values
from media_service import bootstrap
from media_service.adapters.storage import ObjectStore
from media_service.settings import MediaSettings

EXIT_OK = 0
EXIT_FAILURES = 1


DEV_ONLY_DSN = "postgresql://devstack:devstack@127.0.0.1:55432/media"  # the make-run stack


class CliSettings(BaseSettings):
    """Database of the media service: MEDIA_PG_DSN, else EVENTKIT_PG_DSN, else the media
    database of the `make run` stack."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    pg_dsn: SecretStr = Field(
        default=SecretStr(DEV_ONLY_DSN),
        validation_alias=AliasChoices("MEDIA_PG_DSN", "EVENTKIT_PG_DSN"),
    )

    @model_validator(mode="after")
    def _no_development_dsn(self) -> CliSettings:
        refuse_development_values(self, {"pg_dsn": DEV_ONLY_DSN})
        return self


async def _migrate(dsn: str) -> int:
    await bootstrap.prepare_database(dsn)
    print("media: schema up to date")
    return EXIT_OK


async def _sweep(dsn: str, args: argparse.Namespace) -> int:
    settings = MediaSettings()
    limits = settings.limits()
    if args.unused_days is not None:
        limits = replace(limits, unused_ttl=timedelta(days=args.unused_days))
    if args.orphan_minutes is not None:
        limits = replace(limits, orphan_age=timedelta(minutes=args.orphan_minutes))
    await bootstrap.prepare_database(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    objects = ObjectStore(settings.storage())
    media = bootstrap.wire(pool, objects, settings)
    media.photos.limits = limits
    try:
        totals = {"orphans_removed": 0, "unused_deleted": 0, "purged": 0, "failures": 0}
        while True:
            report = await media.photos.sweep(batch=args.batch)
            for key in totals:
                totals[key] += getattr(report, key)
            if report.total == 0 or report.failures:
                break
    finally:
        await media.close()
    print(json.dumps(totals, ensure_ascii=False))
    return EXIT_FAILURES if totals["failures"] else EXIT_OK


def parser() -> argparse.ArgumentParser:
    """The `media` argument parser."""
    top = argparse.ArgumentParser(prog="media", description="媒体服务运维 / media service ops")
    commands = top.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="apply media's migrations")
    sweep = commands.add_parser(
        "sweep", help="remove orphaned uploads, expire unused photos, purge deleted objects"
    )
    sweep.add_argument(
        "--unused-days", type=float, default=None, help="override MEDIA_UNUSED_TTL_DAYS"
    )
    sweep.add_argument(
        "--orphan-minutes", type=float, default=None, help="override MEDIA_ORPHAN_AGE_MINUTES"
    )
    sweep.add_argument("--batch", type=int, default=200)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status says whether it fully succeeded."""
    args = parser().parse_args(argv)
    configure_logging("media-cli", "INFO", json_lines=False)
    dsn = CliSettings().pg_dsn.get_secret_value()
    if args.command == "migrate":
        return asyncio.run(_migrate(dsn))
    return asyncio.run(_sweep(dsn, args))


if __name__ == "__main__":
    sys.exit(main())
