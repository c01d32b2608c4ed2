"""The catalogue store and the `application` CLI on a real PostgreSQL."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import asyncpg
import pytest

from application_service.adapters import catalogue_store
from application_service.adapters.catalogue_files import DEMO_DIR, DEMO_VERSION, load_catalogue_dir
from application_service.adapters.catalogue_store import (
    CatalogueVersionExists,
    CatalogueVersionUnknown,
)
from application_service.entrypoints.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture
def demo_load():
    load = load_catalogue_dir(DEMO_DIR, "2026.1")
    assert load.importable
    return load


async def test_import_load_round_trip(app_pool: asyncpg.Pool, demo_load) -> None:
    version = await catalogue_store.import_catalogue(
        app_pool, demo_load.catalogue, "ops:tester", demo_load.checksums
    )
    assert version == "2026.1"
    catalogue_store.clear_cache(app_pool)
    loaded = await catalogue_store.load(app_pool, version)
    assert loaded == demo_load.catalogue
    assert await catalogue_store.load(app_pool, version) is loaded  # cached
    [info] = await catalogue_store.list_versions(app_pool)
    assert info.imported_by == "ops:tester"
    assert dict(info.checksums) == demo_load.checksums
    assert (info.majors, info.points, info.routes) == (13, len(loaded.points), len(loaded.routes))
    assert not info.active
    assert await catalogue_store.active_version(app_pool) is None


async def test_duplicate_version_refused_and_rows_immutable(
    app_pool: asyncpg.Pool, demo_load
) -> None:
    await catalogue_store.import_catalogue(app_pool, demo_load.catalogue, "ops:a", {})
    with pytest.raises(CatalogueVersionExists):
        await catalogue_store.import_catalogue(app_pool, demo_load.catalogue, "ops:b", {})
    with pytest.raises(asyncpg.RaiseError, match="immutable"):
        await app_pool.execute("UPDATE application.catalogue_courses SET credits = 1")
    with pytest.raises(CatalogueVersionUnknown):
        await catalogue_store.load(app_pool, "nope")


async def test_activate(app_pool: asyncpg.Pool, demo_load) -> None:
    await catalogue_store.import_catalogue(
        app_pool, demo_load.catalogue, "ops:a", {}, activate=True
    )
    assert await catalogue_store.active_version(app_pool) == "2026.1"
    other = load_catalogue_dir(DEMO_DIR, "2026.2").catalogue
    await catalogue_store.import_catalogue(app_pool, other, "ops:a", {})
    assert await catalogue_store.activate(app_pool, "2026.2", "ops:b") is True
    assert await catalogue_store.activate(app_pool, "2026.2", "ops:b") is False
    assert await catalogue_store.active_version(app_pool) == "2026.2"
    versions = {v.version: v.active for v in await catalogue_store.list_versions(app_pool)}
    assert versions == {"2026.1": False, "2026.2": True}
    with pytest.raises(CatalogueVersionUnknown):
        await catalogue_store.activate(app_pool, "9.9", "ops:b")


def _count_versions(dsn: str) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(dsn)
        try:
            exists = await conn.fetchval("SELECT to_regclass('application.catalogue_versions')")
            if exists is None:
                return 0
            return int(await conn.fetchval("SELECT count(*) FROM application.catalogue_versions"))
        finally:
            await conn.close()

    return asyncio.run(count())


def test_cli_import_activate_list(
    database: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APPLICATION_PG_DSN", database)
    assert main(["catalogue-import", str(DEMO_DIR), "--version", "v1", "--actor", "ops:li"]) == 0
    out = capsys.readouterr().out
    assert "已导入目录版本" in out and "v1" in out
    assert main(["catalogue-import", str(DEMO_DIR), "--version", "v1", "--actor", "ops:li"]) == 2
    assert "已存在" in capsys.readouterr().err
    assert main(["catalogue-activate", "v1", "--actor", "ops:li"]) == 0
    assert main(["catalogue-activate", "v2", "--actor", "ops:li"]) == 2
    capsys.readouterr()
    assert main(["catalogue-list"]) == 0
    assert "* v1" in capsys.readouterr().out
    assert main(["catalogue-import-demo", "--activate", "--actor", "ops:li"]) == 0
    assert main(["catalogue-import-demo", "--activate", "--actor", "ops:li"]) == 0
    out = capsys.readouterr().out
    assert "已导入，无需重复" in out and "已是当前版本" in out
    assert main(["catalogue-list", "--dsn", database]) == 0
    assert f"* {DEMO_VERSION}" in capsys.readouterr().out
    assert _count_versions(database) == 2


def test_cli_bad_data_exits_2_and_stores_nothing(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "cat"
    shutil.copytree(DEMO_DIR, target)
    with (target / "courses.csv").open("a", encoding="utf-8") as f:
        f.write(
            "123456,新,00001,未知专业,3,专业核心,考试,N\n580401,旧,00999,x,三,专业核心,考试,N\n"
        )
    argv = ["catalogue-import", str(target), "--version", "v1", "--dsn", database]
    assert main([*argv, "--actor", "ops:li", "--activate"]) == 2
    out = capsys.readouterr().out
    assert "catalogue.unknown_major" in out and "catalogue.bad_number" in out
    assert "未导入任何数据" in out
    assert _count_versions(database) == 0
    assert main([*argv, "--actor", "nobody"]) == 2
    assert main(["catalogue-import", str(tmp_path / "missing"), "--version", "v1"]) == 2
