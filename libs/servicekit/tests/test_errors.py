"""Error bodies: AppError, validation (Chinese, no echoed input), malformed bodies, 404/405, 500."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, Field

from servicekit import AppError, create_app

pytestmark = pytest.mark.unit

ID_NUMBER = "11010519491231002X"


class ItemCreate(BaseModel):
    name: str = Field(min_length=2, max_length=10)
    code: str = Field(pattern=r"^[A-Z]{3}$")
    count: int


class UnstorableText(Exception):
    """Shaped like asyncpg's CharacterNotInRepertoireError (servicekit imports no driver)."""

    sqlstate = "22021"


def build_app() -> FastAPI:
    app = create_app("test", version="0")

    @app.post("/items")
    async def create_item(item: ItemCreate) -> dict[str, str]:
        return {"name": item.name}

    @app.get("/refuse")
    async def refuse() -> None:
        raise AppError(
            "test.refused",
            "不可以",
            "refused for the test",
            status=409,
            field="name",
            extra={"retry_after": 3},
        )

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(f"database said no for {ID_NUMBER}")

    @app.get("/nul")
    async def nul() -> None:
        raise UnstorableText("invalid byte sequence for encoding UTF8: 0x00")

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_app_error_renders_its_status_code_message_field_and_extra(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/refuse")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "test.refused"
    assert error["message"] == "不可以"
    assert error["field"] == "name"
    assert error["retry_after"] == 3
    assert error["request_id"] == response.headers["x-request-id"]
    assert "refused for the test" not in response.text


async def test_validation_errors_are_422_with_chinese_messages_and_no_input_echo(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/items", json={"name": "x", "code": ID_NUMBER, "count": "abc-99"})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "request.invalid"
    by_field = {f["field"]: f for f in error["fields"]}
    assert by_field["name"]["code"] == "string_too_short"
    assert by_field["name"]["message"] == "长度不能少于 2 个字符"
    assert by_field["code"]["code"] == "string_pattern_mismatch"
    assert by_field["code"]["message"] == "格式不正确"
    assert by_field["count"]["message"] == "应为整数"
    assert ID_NUMBER not in response.text
    assert "abc-99" not in response.text
    assert "[A-Z]" not in response.text


async def test_missing_fields_and_missing_body_are_named(client: httpx.AsyncClient) -> None:
    response = await client.post("/items", json={"name": "abc"})
    assert response.status_code == 422
    fields = {f["field"]: f["message"] for f in response.json()["error"]["fields"]}
    assert fields == {"code": "此项为必填项", "count": "此项为必填项"}

    response = await client.post("/items")
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "body"


async def test_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/items", content=b'{"name": "ab", ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "request.malformed_json"


async def test_non_utf8_body_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/items",
        content=b'{"name": "\xe4\xb8", "code": "ABC", "count": 1}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "request.not_utf8"


async def test_unknown_route_and_wrong_method_have_chinese_bodies(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "request.not_found"
    assert response.json()["error"]["message"] == "请求的资源不存在"

    response = await client.delete("/items")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "request.method_not_allowed"
    assert "POST" in response.headers["allow"]


async def test_unexpected_exception_is_a_generic_500_logged_masked(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="servicekit.errors"):
        response = await client.get("/boom")
    assert response.status_code == 500
    error = response.json()["error"]
    assert error["code"] == "internal"
    assert error["message"] == "系统繁忙，请稍后重试"
    assert ID_NUMBER not in response.text
    assert response.headers["x-request-id"] == error["request_id"]
    logged = [r for r in caplog.records if r.name == "servicekit.errors"]
    assert logged
    assert logged[0].exc_info is not None
    assert ID_NUMBER not in logged[0].getMessage()
    assert "1101**********002X" in logged[0].getMessage()


async def test_text_the_database_cannot_store_is_422_not_500(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        response = await client.get("/nul")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "request.invalid_text"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
