"""Window dates lie in a sane range (servicekit.types): refused at the API and the CLI, naming
the field; and a row stored before the rule (a deadline of `-infinity`) never takes down the
windows list, window close, or a candidate's 个人中心 and 免考申请 pages."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from portal_support import PortalRig, portal_rig, ticket

from application_service import bootstrap
from application_service.entrypoints import cli
from conftest import open_window_in, window_times

pytestmark = pytest.mark.integration

WINDOWS = "/api/windows"
FIELDS = (
    "opens_at",
    "applications_close_at",
    "point_review_close_at",
    "province_review_close_at",
    "results_published_at",
)
GOOD = {
    "opens_at": "2026-11-01T08:00:00+08:00",
    "applications_close_at": "2026-12-10T17:00:00+08:00",
    "point_review_close_at": "2026-12-20T17:00:00+08:00",
    "province_review_close_at": "2027-01-05T17:00:00+08:00",
    "results_published_at": "2027-01-10T09:00:00+08:00",
}


def ops(tokens: Callable[..., dict[str, str]]) -> dict[str, str]:
    return tokens(uuid.uuid4(), "staff", ["ops"])


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00+00:00", "0001-01-01T08:00:00+08:00", "2101-01-01T00:00:00Z"]
)
async def test_the_api_refuses_a_window_date_out_of_range_naming_the_field(
    field: str,
    moment: str,
    client: httpx.AsyncClient,
    tokens: Callable[..., dict[str, str]],
    counts: Callable[[], Any],
) -> None:
    before = await counts()
    body = {"name": "2026年下半年免考申请", **GOOD, field: moment}
    response = await client.post(WINDOWS, json=body, headers=ops(tokens))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "request.invalid"
    assert [(f["field"], f["code"]) for f in error["fields"]] == [(field, "date_out_of_range")]
    assert "2000-01-01" in error["fields"][0]["message"]
    assert await counts() == before
    listed = await client.get(WINDOWS)
    assert listed.status_code == 200 and listed.json() == []


async def run(*argv: str) -> int:
    return await asyncio.to_thread(cli.main, list(argv))


@pytest.mark.parametrize(
    ("option", "value"),
    [("--opens", "0001-01-01T08:00"), ("--results", "2101-01-10T09:00"),
     ("--applications-close", "1999-12-10T17:00")],
)  # fmt: skip
async def test_the_cli_refuses_a_window_date_out_of_range_naming_the_option(
    option: str, value: str, database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = {
        "--opens": "2026-11-01T08:00", "--applications-close": "2026-12-10T17:00",
        "--point-review-close": "2026-12-20T17:00", "--province-review-close": "2027-01-05T17:00",
        "--results": "2027-01-10T09:00",
    }  # fmt: skip
    argv[option] = value
    flat = [x for pair in argv.items() for x in pair]
    code = await run("window-open", "--dsn", database, "--name", "bad", *flat)
    assert code == cli.EXIT_UNUSABLE_INPUT
    err = capsys.readouterr().err
    assert f"{option}：日期须在 2000-01-01 至 2100-12-31 之间" in err
    import asyncpg

    conn = await asyncpg.connect(database)
    try:
        assert await conn.fetchval("SELECT to_regclass('application.windows')") is None or (
            await conn.fetchval("SELECT count(*) FROM application.windows") == 0
        )
    finally:
        await conn.close()


async def store_legacy_window(service: bootstrap.ApplicationService) -> uuid.UUID:
    """A row as the service stored a window dated year 1 before the rule: `-infinity`."""
    window_id = uuid.uuid4()
    times = window_times()
    await service.pool.execute(
        """
        INSERT INTO application.windows (window_id, name, opens_at, applications_close_at,
            point_review_close_at, province_review_close_at, results_published_at, created_by)
        VALUES ($1, '误填的申请时段', '-infinity', $2, $3, $4, $5, 'ops:legacy')
        """,
        window_id,
        times["applications_close_at"],
        times["point_review_close_at"],
        times["province_review_close_at"],
        times["results_published_at"],
    )
    return window_id


async def test_an_unreadable_window_row_takes_down_neither_the_list_nor_window_close(
    service: bootstrap.ApplicationService,
    client: httpx.AsyncClient,
    tokens: Callable[..., dict[str, str]],
    counts: Callable[[], Any],
    capsys: pytest.CaptureFixture[str],
    database: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = await open_window_in(service)
    legacy = await store_legacy_window(service)

    listed = await client.get(WINDOWS)
    assert listed.status_code == 200, listed.text
    assert [w["window_id"] for w in listed.json()] == [str(good)]
    assert any(
        "unreadable application window" in r.getMessage() and r.__dict__.get("window_id")
        == str(legacy) for r in caplog.records
    )  # fmt: skip
    assert (await service.windows.current()) is not None

    before = await counts()
    closing = await client.post(
        f"{WINDOWS}/{legacy}/close", json={"reason": "误填"}, headers=ops(tokens)
    )
    assert closing.status_code == 409, closing.text
    assert closing.json()["error"]["code"] == "application.window_unreadable"
    assert await counts() == before  # refused before anything was written

    closed = await client.post(
        f"{WINDOWS}/{good}/close", json={"reason": "政策调整"}, headers=ops(tokens)
    )
    assert closed.status_code == 200, closed.text
    assert closed.json()["stage"] == "closed"

    assert await run("window-list", "--dsn", database) == cli.EXIT_OK
    assert "2026年下半年免考申请" in capsys.readouterr().out


@pytest.fixture
async def portal(
    service: bootstrap.ApplicationService, database: str, tmp_path: Path
) -> AsyncIterator[PortalRig]:
    async with portal_rig(service, database, tmp_path) as rig:
        yield rig


async def test_an_unreadable_window_row_takes_down_no_candidate_page(portal: PortalRig) -> None:
    await open_window_in(portal.service)
    await store_legacy_window(portal.service)
    async with portal.client() as client:
        assert (await portal.register(client, 0)).status_code == 303
        assert (await portal.login(client, ticket(0))).status_code == 303
        centre = await client.get("/centre")
        assert centre.status_code == 200, centre.text
        assert "免考申请" in centre.text and "已开放" in centre.text
        step1 = await client.get("/apply")
        assert step1.status_code == 200, step1.text
        assert "免考确认点" in step1.text
