"""Dates and moments of requests lie in a sane range: outside it, 422 `request.invalid` naming
the field (code `date_out_of_range`, a Chinese message), never a value PostgreSQL would store
as -infinity or refuse."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta, timezone

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ValidationError

from servicekit import create_app
from servicekit.types import (
    DATE_OUT_OF_RANGE,
    SaneDate,
    SaneDatetime,
    in_sane_range,
    sane_range_problem,
)

pytestmark = pytest.mark.unit

BEIJING = timezone(timedelta(hours=8))


class Window(BaseModel):
    opens_at: SaneDatetime
    deadline: SaneDate | None = None


def build_app() -> FastAPI:
    app = create_app("types-test", version="0")

    @app.post("/windows")
    async def post_window(body: Window) -> dict[str, object]:
        return body.model_dump(mode="json")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.mark.parametrize(
    "moment",
    [datetime(2000, 1, 1, tzinfo=BEIJING), datetime(2100, 12, 31, 23, 59, 59, tzinfo=UTC),
     datetime(2026, 11, 1, 8, tzinfo=BEIJING)],
)  # fmt: skip
def test_moments_in_range_are_kept(moment: datetime) -> None:
    assert Window(opens_at=moment).opens_at == moment
    assert in_sane_range(moment) and sane_range_problem(moment, "--opens") is None


@pytest.mark.parametrize(
    "moment",
    ["0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+08:00", "1999-12-31T23:59:59+08:00",
     "2101-01-01T00:00:00Z", "9999-12-31T23:59:59-08:00"],
)  # fmt: skip
def test_moments_out_of_range_are_refused(moment: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Window.model_validate({"opens_at": moment})
    assert [e["type"] for e in caught.value.errors()] == [DATE_OUT_OF_RANGE]
    problem = sane_range_problem(datetime.fromisoformat(moment), "--opens")
    assert problem == "--opens：日期须在 2000-01-01 至 2100-12-31 之间"


def test_dates_share_the_range() -> None:
    assert Window(opens_at="2026-11-01T08:00+08:00", deadline="2100-12-31").deadline == date(
        2100, 12, 31
    )
    for bad in ("0001-01-01", "1999-12-31", "2101-01-01"):
        with pytest.raises(ValidationError):
            Window.model_validate({"opens_at": "2026-11-01T08:00+08:00", "deadline": bad})


async def test_the_api_answers_422_naming_the_field_in_chinese(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/windows", json={"opens_at": "0001-01-01T00:00:00Z", "deadline": "2026-12-01"}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "request.invalid"
    assert error["fields"] == [
        {"field": "opens_at", "code": DATE_OUT_OF_RANGE,
         "message": "日期须在 2000-01-01 至 2100-12-31 之间"},
    ]  # fmt: skip
    response = await client.post(
        "/windows", json={"opens_at": "2026-11-01T08:00:00+08:00", "deadline": "0001-01-01"}
    )
    assert response.status_code == 422
    assert [f["field"] for f in response.json()["error"]["fields"]] == ["deadline"]
    ok = await client.post("/windows", json={"opens_at": "2026-11-01T08:00:00+08:00"})
    assert ok.status_code == 200, ok.text
