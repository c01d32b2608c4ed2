"""The text rule of every request: control characters refused in bodies, query strings and
paths (naming the field), blank seen through invisible characters, numbers in ASCII digits only,
and any HTTP verb folded into one metric label."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from pydantic import Field, ValidationError

from eventkit.text import ascii_int, clean_text, has_control_characters, is_blank
from servicekit import create_app
from servicekit.models import OptionalText, RequiredText, StrictRequest

pytestmark = pytest.mark.unit

INVISIBLE = ["\u200b", "\ufeff", "\u200b\u200c\u200d", " \u2060\u00a0\u3000 ", "\u202e\u200e"]
CONTROLS = ["\x00", "\x01", "\x08", "\x0b", "\x0c", "\x0d", "\x1b", "\x1f", "\x7f"]


class Verdict(StrictRequest):
    course_code: str
    reason: OptionalText = None


class Return(StrictRequest):
    reason: RequiredText
    note: OptionalText = None
    tags: list[str] = Field(default_factory=list)
    labels: dict[str, str] = Field(default_factory=dict)
    verdicts: list[Verdict] = Field(default_factory=list)


def build_app() -> FastAPI:
    app = create_app("text-test", version="0")

    @app.post("/returns")
    async def post_return(body: Return) -> dict[str, object]:
        return body.model_dump()

    @app.get("/search")
    async def search(q: str = "", size: int = 20) -> dict[str, object]:
        return {"q": q, "size": size}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.mark.parametrize("control", CONTROLS)
def test_control_characters_are_detected_but_tab_and_newline_are_text(control: str) -> None:
    assert has_control_characters(f"a{control}b")
    assert not has_control_characters("第一行\n第二行\t备注")


@pytest.mark.parametrize("invisible", INVISIBLE)
def test_blank_sees_through_whitespace_and_format_characters(invisible: str) -> None:
    assert is_blank(invisible)
    assert clean_text(invisible) == ""
    assert clean_text(f"{invisible}证书模糊{invisible}") == "证书模糊"
    assert not is_blank("证书\u200b模糊")
    assert clean_text("证书\u200d模糊") == "证书\u200d模糊"  # inner joiners are kept


NOT_ASCII_NUMBERS = ["²", "¹²", "١٢", "٣", "１２", "-1", "+1", "1.0", "", " 1", "9" * 19]


@pytest.mark.parametrize("text", NOT_ASCII_NUMBERS)
def test_numbers_are_ascii_digits_only(text: str) -> None:
    assert ascii_int(text) is None


def test_ascii_digits_parse() -> None:
    assert ascii_int("0") == 0
    assert ascii_int("100") == 100
    assert ascii_int("9" * 18) == int("9" * 18)


@pytest.mark.parametrize("control", CONTROLS)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "x{c}y"}, "reason"),
        ({"reason": "ok", "note": "a{c}"}, "note"),
        ({"reason": "ok", "tags": ["fine", "{c}"]}, "tags"),
        ({"reason": "ok", "labels": {"k{c}": "v"}}, "labels"),
        ({"reason": "ok", "labels": {"k": "v{c}"}}, "labels"),
        ({"reason": "ok", "verdicts": [{"course_code": "0{c}"}]}, "verdicts.0.course_code"),
        (
            {"reason": "ok", "verdicts": [{"course_code": "1", "reason": "{c}"}]},
            "verdicts.0.reason",
        ),
    ],
)
async def test_a_control_character_anywhere_in_a_body_is_refused_naming_the_field(
    client: httpx.AsyncClient, control: str, body: dict[str, object], field: str
) -> None:
    raw = _fill(body, control)
    response = await client.post("/returns", json=raw)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "request.invalid"
    assert {"field": field, "code": "string_control_character"}.items() <= error["fields"][
        0
    ].items()
    assert error["fields"][0]["message"] == "包含不允许的控制字符"


def _fill(value: object, control: str) -> object:
    if isinstance(value, str):
        return value.replace("{c}", control)
    if isinstance(value, list):
        return [_fill(v, control) for v in value]
    if isinstance(value, dict):
        return {_fill(k, control): _fill(v, control) for k, v in value.items()}
    return value


@pytest.mark.parametrize("invisible", INVISIBLE)
async def test_a_required_text_of_only_invisible_characters_is_blank(
    client: httpx.AsyncClient, invisible: str
) -> None:
    response = await client.post("/returns", json={"reason": invisible, "note": invisible})
    assert response.status_code == 422
    fields = response.json()["error"]["fields"]
    assert fields == [{"field": "reason", "code": "string_blank", "message": "此项不能为空"}]


async def test_texts_are_trimmed_of_invisible_edges(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/returns", json={"reason": "\ufeff 请补充照片\u200b\n", "note": "\u200b"}
    )
    assert response.status_code == 200
    assert response.json()["reason"] == "请补充照片"
    assert response.json()["note"] is None


def test_the_rule_is_the_models_own_not_only_the_apis() -> None:
    with pytest.raises(ValidationError) as caught:
        Return(reason="ok", verdicts=[Verdict(course_code="1")], tags=["\x00"])
    assert caught.value.errors()[0]["loc"] == ("tags",)


@pytest.mark.parametrize("query", ["q=%00", "q=a%01b", "size=1&q=%1B", "%00=1", "q=%7F"])
async def test_a_control_character_in_the_query_is_422_naming_the_parameter(
    client: httpx.AsyncClient, query: str
) -> None:
    response = await client.get(f"/search?{query}")
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "request.invalid"
    assert error["fields"][0]["field"] in {"q", "query"}
    assert error["request_id"] == response.headers["x-request-id"]


async def test_a_control_character_in_the_path_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/search%00")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "request.not_found"


@pytest.mark.parametrize("size", ["²", "١", "１"])
async def test_non_ascii_digits_in_a_query_number_are_422(
    client: httpx.AsyncClient, size: str
) -> None:
    response = await client.get("/search", params={"size": size})
    assert response.status_code == 422
    assert response.json()["error"]["fields"][0]["field"] == "size"


async def test_tab_and_newline_pass_and_so_does_chinese(client: httpx.AsyncClient) -> None:
    response = await client.get("/search", params={"q": "张\t三\n"})
    assert response.status_code == 200
    assert response.json()["q"] == "张\t三\n"


async def test_unknown_http_verbs_fold_into_one_metric_label(client: httpx.AsyncClient) -> None:
    for verb in ("ZZPROBE1", "ZZPROBE2", "zzprobe3"):
        await client.request(verb, "/search")
    await client.request("PATCH", "/search")
    samples = {
        s.labels["method"]
        for metric in REGISTRY.collect()
        if metric.name == "http_request_duration_seconds"
        for s in metric.samples
    }
    assert not {m for m in samples if "ZZ" in m.upper()}
    assert {"OTHER", "PATCH"} <= samples
