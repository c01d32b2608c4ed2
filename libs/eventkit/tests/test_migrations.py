"""The migration runner on a real PostgreSQL: once, in order, recorded, tamper-evident."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from eventkit.migrations import MigrationError, migrate

pytestmark = pytest.mark.integration


async def test_service_migrations_apply_once_and_refuse_edits(
    database: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_people.sql").write_text("CREATE TABLE people (id int PRIMARY KEY);")
    (tmp_path / "0002_names.sql").write_text("ALTER TABLE people ADD COLUMN name text;")
    results = await asyncio.gather(*(migrate(database, "svc", tmp_path) for _ in range(4)))
    assert sorted(len(r) for r in results) == [0, 0, 0, 2]
    assert await migrate(database, "svc", tmp_path) == []
    conn = await asyncpg.connect(database)
    try:
        rows = await conn.fetch(
            "SELECT namespace, name FROM schema_migrations ORDER BY namespace, version"
        )
        assert [(r["namespace"], r["name"]) for r in rows] == [
            ("eventkit", "0001_eventkit.sql"),
            ("eventkit", "0002_parked_streams.sql"),
            ("svc", "0001_people.sql"),
            ("svc", "0002_names.sql"),
        ]
    finally:
        await conn.close()
    (tmp_path / "0002_names.sql").write_text("ALTER TABLE people ADD COLUMN nickname text;")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        await migrate(database, "svc", tmp_path)


async def test_a_failing_migration_leaves_nothing_half_applied(
    database: str, tmp_path: Path
) -> None:
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE a (id int);")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE b (id int); SELECT * FROM missing_table;")
    with pytest.raises(asyncpg.UndefinedTableError):
        await migrate(database, "svc", tmp_path)
    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetchval("SELECT to_regclass('public.a') IS NOT NULL")
        assert await conn.fetchval("SELECT to_regclass('public.b') IS NULL")
        assert (
            await conn.fetchval("SELECT count(*) FROM schema_migrations WHERE namespace='svc'") == 1
        )
    finally:
        await conn.close()
