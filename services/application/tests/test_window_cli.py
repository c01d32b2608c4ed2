"""The ops commands that open, list and close application windows."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from application_service.entrypoints import cli

pytestmark = pytest.mark.integration


async def run(*argv: str) -> int:
    return await asyncio.to_thread(cli.main, list(argv))


async def test_open_list_and_close_a_window(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    opened = await run(
        "window-open", "--dsn", database, "--actor", "ops:zhang.san",
        "--name", "2026年下半年免考申请",
        "--opens", "2026-11-01T08:00", "--applications-close", "2026-12-10T17:00",
        "--point-review-close", "2026-12-20T17:00", "--province-review-close", "2027-01-05T17:00",
        "--results", "2027-01-10T09:00",
    )  # fmt: skip
    assert opened == cli.EXIT_OK
    window_id = capsys.readouterr().out.split("window opened: ")[1].split()[0]
    assert await run("window-list", "--dsn", database) == cli.EXIT_OK
    assert "2026年下半年免考申请" in capsys.readouterr().out

    conn = await asyncpg.connect(database)
    try:
        row = await conn.fetchrow("SELECT * FROM application.windows")
        assert str(row["window_id"]) == window_id
        assert row["opens_at"].isoformat() == "2026-11-01T00:00:00+00:00"  # 08:00 Beijing
        assert row["created_by"] == "ops:zhang.san"
        closed = await run(
            "window-close", window_id, "--reason", "政策调整", "--dsn", database,
            "--actor", "ops:li.si",
        )  # fmt: skip
        assert closed == cli.EXIT_OK
        assert await conn.fetchval("SELECT closed_by_ops FROM application.windows")
        events = await conn.fetch(
            "SELECT event_type, actor_id FROM eventkit.events WHERE stream_type ="
            " 'application.window' ORDER BY seq"
        )
        assert [(e["event_type"], e["actor_id"]) for e in events] == [
            ("ApplicationWindowOpened", "zhang.san"),
            ("ApplicationWindowClosed", "li.si"),
        ]
        again = await run(
            "window-close", window_id, "--reason", "x", "--dsn", database, "--actor", "ops:li.si"
        )
        assert again == cli.EXIT_UNUSABLE_INPUT
    finally:
        await conn.close()


async def test_deadlines_out_of_order_are_refused(database: str) -> None:
    code = await run(
        "window-open", "--dsn", database, "--name", "bad",
        "--opens", "2026-12-10T08:00", "--applications-close", "2026-12-01T17:00",
        "--point-review-close", "2026-12-20T17:00", "--province-review-close", "2027-01-05T17:00",
        "--results", "2027-01-10T09:00",
    )  # fmt: skip
    assert code == cli.EXIT_UNUSABLE_INPUT
    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetchval("SELECT to_regclass('application.windows')") is None or (
            await conn.fetchval("SELECT count(*) FROM application.windows") == 0
        )
    finally:
        await conn.close()
