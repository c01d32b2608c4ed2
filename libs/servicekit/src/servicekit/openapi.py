"""Each operation's error answers in the OpenAPI document, all with the shared `ErrorBody`.

A client (and schemathesis's status-code check) can hold a service to what its document says,
so the document says every status an operation answers, derived from what the operation is:

- 422 `request.invalid` for any operation that takes parameters or a body;
- 400 (malformed JSON) and 413 (too large) for one that takes a body;
- 401 and 403 for one behind identity's bearer token;
- 404 for one whose path names a resource, and for a command on one;
- 409 for a command (POST, PUT, PATCH, DELETE): the state it acts on moved or forbids it;
- 503 with `Retry-After` for every operation: a dependency is away for a moment.

A route adds what only it answers (429 for a throttled login, 410 for an expired code) with
`responses=errors(429, 410)`. The route's own descriptions win over these defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

DESCRIPTIONS: dict[int, str] = {
    400: "请求格式不正确 (malformed JSON or body)",
    401: "请先登录 (missing, expired or revoked token)",
    403: "无权执行此操作 (the token's roles or scope do not allow it)",
    404: "请求的资源不存在 (unknown, or not visible to this caller)",
    409: "与当前状态冲突 (the resource moved on, or its state forbids this)",
    410: "已过期 (the resource expired)",
    413: "提交的内容过大 (body over the size limit)",
    415: "不支持的内容类型",
    422: "提交的信息有误 (request.invalid with the fields, or a rule of the domain)",
    429: "操作过于频繁 (throttled; see Retry-After)",
    503: "服务暂不可用 (a dependency is away; see Retry-After)",
}
UNSAFE = frozenset({"post", "put", "patch", "delete"})
RETRY_AFTER = {
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: these statuses answer with the shared error body."""
    return {status: _response(status) for status in statuses}


def _response(status: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "description": DESCRIPTIONS.get(status, "请求失败"),
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }
    if status in (429, 503):
        body["headers"] = RETRY_AFTER
    return body


def statuses_of(method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation answers, by what it is (see the module's docstring)."""
    parameters = operation.get("parameters", [])
    has_body = "requestBody" in operation
    found = {503}
    if parameters or has_body:
        found.add(422)
    if has_body:
        found |= {400, 413}
    if operation.get("security"):
        found |= {401, 403}
    if any(p.get("in") == "path" for p in parameters):
        found.add(404)
    if method in UNSAFE:
        found |= {404, 409}
    return found


def document_errors(app: FastAPI) -> None:
    """Make `app.openapi()` declare each operation's error answers with `ErrorBody`."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        for path_item in document.get("paths", {}).values():
            for method, operation in path_item.items():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                responses = operation["responses"]
                # `default` would make any status conform; each status is declared instead (the
                # default's ErrorBody only serves to put the error schemas into components).
                responses.pop("default", None)
                if "422" in responses and "ErrorBody" not in str(responses["422"]):
                    del responses["422"]  # FastAPI's own HTTPValidationError: not our body
                for status in sorted(statuses_of(method, operation)):
                    responses.setdefault(str(status), _response(status))
        schemas = document.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas and "HTTPValidationError" not in str(
            document.get("paths")
        ):
            schemas.pop("HTTPValidationError", None)
            schemas.pop("ValidationError", None)
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def documented_statuses(document: dict[str, Any], method: str, path: str) -> set[int]:
    """The statuses the document declares for one operation (for tests holding a service to
    them; `default` is not a status)."""
    operation = document["paths"][path][method.lower()]
    return {int(code) for code in operation["responses"] if code.isdigit()}
