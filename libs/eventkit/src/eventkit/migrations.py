"""Plain-SQL migrations, applied in order, once, each recorded with its checksum."""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

from eventkit.db import Conn

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
_LOCK_KEY = 0x65766B6D  # pg advisory lock id for "evkm": one migrator at a time per database


class MigrationError(RuntimeError):
    """A migration file is malformed, or an applied one was changed after the fact."""


@dataclass(frozen=True)
class Migration:
    """One SQL file: its version number, name and text."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """sha256 of the file's text, to catch edits to an applied migration."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path) -> list[Migration]:
    """The migrations in a directory, ordered by version; file names are NNNN_name.sql."""
    found: list[Migration] = []
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _NAME.match(path.name)
        if match is None:
            raise MigrationError(f"migration file name must be NNNN_name.sql: {path.name}")
        found.append(Migration(int(match.group(1)), path.name, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return found


def eventkit_migrations() -> list[Migration]:
    """eventkit's own schema, shipped inside the package."""
    return discover(Path(str(resources.files("eventkit") / "sql")))


async def apply(conn: Conn, namespace: str, migrations: list[Migration]) -> list[str]:
    """Apply the not-yet-applied migrations of `namespace`; returns the names applied now."""
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """
            CREATE TABLE IF NOT EXISTS public.schema_migrations (
                namespace  text NOT NULL,
                version    integer NOT NULL,
                name       text NOT NULL,
                checksum   text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (namespace, version)
            )
            """
        )
        rows = await conn.fetch(
            "SELECT version, name, checksum FROM public.schema_migrations WHERE namespace = $1",
            namespace,
        )
        done = {r["version"]: r for r in rows}
        for migration in migrations:
            row = done.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"{namespace}/{migration.name} was changed after it was applied"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO public.schema_migrations (namespace, version, name, checksum)"
                    " VALUES ($1, $2, $3, $4)",
                    namespace,
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info(
                "migration applied", extra={"namespace": namespace, "migration": migration.name}
            )
            applied_now.append(migration.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied_now


async def migrate(dsn: str, namespace: str, directory: Path | None = None) -> list[str]:
    """Apply eventkit's schema and then a service's own migrations from `directory`."""
    conn = await asyncpg.connect(dsn)
    try:
        applied = await apply(conn, "eventkit", eventkit_migrations())
        if directory is not None:
            applied += await apply(conn, namespace, discover(directory))
        return applied
    finally:
        await conn.close()
