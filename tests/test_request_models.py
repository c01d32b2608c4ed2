"""Every request model of every service refuses control characters in every string field.

Walks each service's OpenAPI document: each JSON request body must be a model built on
servicekit's `StrictRequest`, and a NUL (and the other C0 controls) put into any string field,
at any depth (nested models, lists, dicts), must be refused at that field's location. Query
strings get the same rule from servicekit's middleware, which runs before authentication: every
operation with a string query parameter answers a NUL in it with 422 `request.invalid`.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, _iter_included_route_candidates
from pydantic import BaseModel, ValidationError

from application_service.entrypoints.api import build_app as application_app
from credential_verify_service.entrypoints.api import build_app as credential_app
from identity_service.entrypoints.api import build_app as identity_app
from media_service.entrypoints.api import build_app as media_app
from review_service.entrypoints.api import build_app as review_app
from servicekit.models import StrictRequest

pytestmark = pytest.mark.unit

APPS: dict[str, FastAPI] = {
    "identity": identity_app(),
    "application": application_app(),
    "credential-verify": credential_app(),
    "media": media_app(),
    "review": review_app(),
}
CONTROLS = ("\x00", "\x07", "\x1b", "\x7f")


@dataclass(frozen=True)
class Operation:
    service: str
    method: str
    path: str
    route: APIRoute

    def __str__(self) -> str:
        return f"{self.service} {self.method} {self.path}"


def operations() -> Iterator[Operation]:
    """Each operation of each service's OpenAPI document, with the route that serves it."""
    for service, app in APPS.items():
        routes = {
            (method, route.path_format): route
            # Included routers are resolved lazily (FastAPI ≥ 0.160); this flattens them.
            for route in _iter_included_route_candidates(app.routes)
            if isinstance(route, APIRoute)
            for method in route.methods
        }
        for path, item in app.openapi()["paths"].items():
            for method in item:
                yield Operation(service, method.upper(), path, routes[(method.upper(), path)])


BODIES = [op for op in operations() if op.route.body_field is not None]
QUERIES = [
    (op, p.alias)
    for op in operations()
    for p in op.route.dependant.query_params
    if p.field_info.annotation in (str, str | None)
]


def test_the_walk_finds_the_request_bodies_of_every_service() -> None:
    services = {op.service for op in BODIES}
    assert services >= {"identity", "application", "credential-verify", "review"}, services
    assert len(BODIES) >= 15, [str(op) for op in BODIES]


def _body_model(op: Operation) -> type[BaseModel]:
    assert op.route.body_field is not None
    annotation = op.route.body_field.field_info.annotation
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel), str(op)
    return annotation


@pytest.mark.parametrize("op", BODIES, ids=str)
def test_every_request_body_is_a_strict_request(op: Operation) -> None:
    model = _body_model(op)
    assert issubclass(model, StrictRequest), f"{op}: {model.__name__} is not a StrictRequest"


def _string_paths(annotation: Any, prefix: tuple[Any, ...], depth: int = 0) -> Iterator[Any]:
    """(location, value) pairs that put a placeholder string at every string position."""
    if depth > 6:
        return
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        yield from _string_paths(typing.get_args(annotation)[0], prefix, depth)
        return
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                yield from _string_paths(arg, prefix, depth)
        return
    if annotation is str:
        yield prefix, "{c}"
        return
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, info in annotation.model_fields.items():
            key = info.alias or name
            for loc, value in _string_paths(info.annotation, (), depth + 1):
                yield (*prefix, key, *loc), ("field", key, value)
        return
    if origin in (list, tuple, set, frozenset, typing.Sequence):
        args = typing.get_args(annotation)
        for loc, value in _string_paths(args[0] if args else Any, (), depth + 1):
            yield (*prefix, 0, *loc), ("list", value)
        return
    if origin in (dict, typing.Mapping):
        args = typing.get_args(annotation)
        if args and args[0] is str:
            yield prefix, ("dictkey", "{c}")
        for loc, value in _string_paths(args[1] if args else Any, (), depth + 1):
            yield (*prefix, "k", *loc), ("dict", value)


def _build(spec: Any, control: str) -> Any:
    """The JSON value a spec from `_string_paths` describes, with `control` in the string."""
    if spec == "{c}":
        return f"a{control}b"
    kind = spec[0]
    if kind == "field":
        return {spec[1]: _build(spec[2], control)}
    if kind == "list":
        return [_build(spec[1], control)]
    if kind == "dictkey":
        return {f"k{control}": "v"}
    if kind == "dict":
        return {"k": _build(spec[1], control)}
    raise AssertionError(spec)


def _fields(model: type[BaseModel]) -> list[tuple[tuple[Any, ...], Any]]:
    return list(_string_paths(model, ()))


STRING_FIELDS = [
    (op, loc, spec)
    for op in BODIES
    for loc, spec in _fields(_body_model(op))
    if op.route.body_field is not None
]


def test_the_walk_reaches_nested_string_fields() -> None:
    assert len(STRING_FIELDS) >= 30
    assert any(len(loc) >= 3 for _, loc, _ in STRING_FIELDS), "no nested model field found"


@pytest.mark.parametrize("control", CONTROLS, ids=repr)
@pytest.mark.parametrize(
    ("op", "loc", "spec"),
    STRING_FIELDS,
    ids=[f"{op}:{'.'.join(map(str, loc))}" for op, loc, _ in STRING_FIELDS],
)
def test_a_control_character_in_any_string_field_is_refused_there(
    op: Operation, loc: tuple[Any, ...], spec: Any, control: str
) -> None:
    model = _body_model(op)
    body = _build(spec, control)
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    locations = {tuple(error["loc"]) for error in caught.value.errors()}
    # Refused at the string itself, or at the list or mapping field that holds it.
    named = {where for where in locations if where and loc[: len(where)] == where}
    assert named, f"{op}: nothing refused at {loc}; errors at {sorted(locations, key=str)}"


@pytest.mark.parametrize(("op", "name"), QUERIES, ids=[f"{op}?{n}" for op, n in QUERIES])
async def test_a_nul_in_any_string_query_parameter_is_422_before_anything_else(
    op: Operation, name: str
) -> None:
    app = APPS[op.service]
    path = op.path.replace("{", "").replace("}", "")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.request(op.method, path, params={name: "a\x00b"})
    assert response.status_code == 422, f"{op}?{name}: {response.status_code}"
    error = response.json()["error"]
    assert error["code"] == "request.invalid"
    assert error["fields"][0]["field"] == name


# --- the documented answers ---------------------------------------------------------------------

DOCUMENTS = {service: app.openapi() for service, app in APPS.items()}
OPERATIONS = [
    (service, method, path, operation)
    for service, document in DOCUMENTS.items()
    for path, item in document["paths"].items()
    for method, operation in item.items()
]


@pytest.mark.parametrize(
    ("service", "method", "path", "operation"),
    OPERATIONS,
    ids=[f"{s} {m.upper()} {p}" for s, m, p, _ in OPERATIONS],
)
def test_every_operation_declares_its_error_answers_with_the_error_body(
    service: str, method: str, path: str, operation: dict[str, Any]
) -> None:
    responses = operation["responses"]
    assert "default" not in responses, "a default response makes every status conform"
    declared = {int(code) for code in responses}
    assert 503 in declared
    if operation.get("parameters") or "requestBody" in operation:
        assert 422 in declared
    if operation.get("security"):
        assert {401, 403} <= declared
    if "{" in path:
        assert 404 in declared
    for code, response in responses.items():
        if int(code) >= 400:
            schema = response["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (code, schema)
    assert "HTTPValidationError" not in str(DOCUMENTS[service]["paths"])
