"""Errors as values the user can act on, and the one JSON body every failure is rendered in."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from eventkit.errors import DomainError
from eventkit.logs import correlation_id, mask_personal_data
from eventkit.transient import describe, is_transient

log = logging.getLogger("servicekit.errors")

INTERNAL_MESSAGE = "系统繁忙，请稍后重试"
INVALID_REQUEST_MESSAGE = "提交的信息有误，请检查后重试"
# A dependency (the database, object storage, a peer) is away for the moment: 503, never 500.
UNAVAILABLE_CODE = "service.unavailable"
UNAVAILABLE_MESSAGE = "服务暂时不可用，请稍后重试"
UNAVAILABLE_RETRY_AFTER = 5  # seconds


class FieldError(BaseModel):
    """One invalid field: its dotted path, a stable code and a Chinese message."""

    model_config = ConfigDict(frozen=True)

    field: str
    code: str
    message: str


class ErrorDetail(BaseModel):
    """The `error` object of every error response."""

    model_config = ConfigDict(frozen=True, extra="allow")

    code: str
    message: str
    field: str | None = None
    fields: list[FieldError] | None = None
    request_id: str


class ErrorBody(BaseModel):
    """`{"error": {...}}`: the only error body shape the services return (for OpenAPI too)."""

    model_config = ConfigDict(frozen=True)

    error: ErrorDetail


class AppError(Exception):
    """A failure the caller can act on: stable code, Chinese UI message, English log detail."""

    def __init__(
        self,
        code: str,
        message: str,
        detail_en: str,
        *,
        status: int = 400,
        field: str | None = None,
        fields: Sequence[FieldError] = (),
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail_en}")
        if not 400 <= status < 600:
            raise ValueError(f"AppError status must be 4xx or 5xx, got {status}")
        self.code = code
        self.message = message
        self.detail_en = detail_en
        self.status = status
        self.field = field
        self.fields = tuple(fields)
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


class ServiceUnavailable(AppError):
    """503 `service.unavailable` with Retry-After: what the service needs is away for now."""

    def __init__(
        self,
        detail_en: str,
        *,
        retry_after: int = UNAVAILABLE_RETRY_AFTER,
        code: str = UNAVAILABLE_CODE,
        message: str = UNAVAILABLE_MESSAGE,
    ) -> None:
        super().__init__(
            code, message, detail_en, status=503, headers={"Retry-After": str(retry_after)}
        )


def with_retry_after(status: int, headers: Mapping[str, str] | None) -> dict[str, str]:
    """`headers`, with the default Retry-After added to a 503 that has none: every 503 the
    services answer tells the client when to try again."""
    result = dict(headers or {})
    if status == 503 and not any(k.lower() == "retry-after" for k in result):
        result["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return result


def request_id_of(request: Request) -> str:
    """The id the request context middleware gave this request (or the current correlation id)."""
    rid = getattr(request.state, "request_id", None)
    if isinstance(rid, str):
        return rid
    return correlation_id.get() or ""


def error_body(
    code: str,
    message: str,
    request_id: str,
    *,
    field: str | None = None,
    fields: Sequence[FieldError] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Render the `{"error": {...}}` body; optional parts are left out when empty."""
    detail = ErrorDetail(
        code=code,
        message=message,
        field=field,
        fields=list(fields) or None,
        request_id=request_id,
        **{k: v for k, v in (extra or {}).items() if k not in ErrorDetail.model_fields},
    )
    return {"error": detail.model_dump(exclude_none=True)}


def error_response(
    status: int,
    code: str,
    message: str,
    request_id: str,
    *,
    field: str | None = None,
    fields: Sequence[FieldError] = (),
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """A JSONResponse in the shared error shape, echoing the request id header."""
    all_headers = {"X-Request-ID": request_id} if request_id else {}
    all_headers.update(headers or {})
    return JSONResponse(
        error_body(code, message, request_id, field=field, fields=fields, extra=extra),
        status_code=status,
        headers=all_headers,
    )


@dataclass(frozen=True)
class ErrorView:
    """What an HTML error page shows: status, stable code, Chinese message, request id."""

    status: int
    code: str
    message: str
    request_id: str
    fields: tuple[FieldError, ...] = ()


ErrorPage = Callable[[Request, ErrorView], Awaitable[Response | None]]


def set_error_page(app: FastAPI, page: ErrorPage) -> None:
    """Let a web UI render errors as HTML: `page` answers a Response for the requests it owns
    (its pages, not `/api/...`) and None for the rest, which keep the JSON body."""
    app.state.error_page = page


async def _respond(
    request: Request,
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    fields: Sequence[FieldError] = (),
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    rid = request_id_of(request)
    headers = with_retry_after(status, headers)
    html = await error_page_response(request, ErrorView(status, code, message, rid, tuple(fields)))
    if html is not None:
        for name, value in (headers or {}).items():
            html.headers[name] = value
        return html
    return error_response(
        status, code, message, rid, field=field, fields=fields, extra=extra, headers=headers
    )


async def error_page_response(request: Request, view: ErrorView) -> Response | None:
    """The app's HTML error page for this request (`set_error_page`), or None when the app has
    none or the request is not one of its pages (the JSON API)."""
    page: ErrorPage | None = getattr(request.app.state, "error_page", None)
    html = None if page is None else await page(request, view)
    if html is not None and view.request_id:
        html.headers["X-Request-ID"] = view.request_id
    return html


async def answer_error(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    fields: Sequence[FieldError] = (),
) -> None:
    """Answer from a pure-ASGI middleware: a web UI's own HTML error page for its pages (a
    candidate never sees JSON; a plain page when the UI's own cannot be rendered), else the
    JSON error body."""
    request_id = str(scope.get("state", {}).get("request_id", ""))
    headers = with_retry_after(status, headers)
    if "app" in scope:  # set by Starlette before its middleware runs
        view = ErrorView(status, code, message, request_id, tuple(fields))
        try:
            html = await error_page_response(Request(scope, receive), view)
        except Exception as exc:  # the UI's page needs what is not there (yet): a plain one
            log.warning("error page failed", extra={"error": describe(exc)})
            html = plain_error_page(view)
        if html is not None:
            for name, value in headers.items():
                html.headers[name] = value
            await html(scope, receive, send)
            return
    all_headers = {"X-Request-ID": request_id} if request_id else {}
    all_headers.update(headers)
    await send_error(send, status, code, message, request_id, all_headers, fields)


def plain_error_page(view: ErrorView) -> Response:
    """A bare Chinese HTML error page (no template, no script, no style), for a web UI whose
    own page cannot be rendered: while it starts, before its templates are wired."""
    body = (
        '<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{escape(view.message)}</title></head><body>"
        f"<h1>{escape(view.message)}</h1>"
        f"<p>错误代码：{escape(view.code)}</p>"
        + (f"<p>请求编号：{escape(view.request_id)}</p>" if view.request_id else "")
        + "</body></html>"
    )
    headers = {"X-Request-ID": view.request_id} if view.request_id else None
    return HTMLResponse(body, status_code=view.status, headers=headers)


async def send_error(
    send: Send,
    status: int,
    code: str,
    message: str,
    request_id: str,
    headers: Mapping[str, str] | None = None,
    fields: Sequence[FieldError] = (),
) -> None:
    """Send an error response straight over ASGI (for pure-ASGI middleware)."""
    body = error_body(code, message, request_id, fields=fields)
    payload = json.dumps(body, ensure_ascii=False).encode()
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
    ]
    raw += [
        (k.lower().encode("latin-1"), v.encode("latin-1"))
        for k, v in with_retry_after(status, headers).items()
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})


# Chinese phrases per pydantic error type; placeholders come from the schema (ctx), never the input.
_PHRASES: dict[str, str] = {
    "missing": "此项为必填项",
    "string_type": "应为文本",
    "string_too_short": "长度不能少于 {min_length} 个字符",
    "string_too_long": "长度不能超过 {max_length} 个字符",
    "string_pattern_mismatch": "格式不正确",
    "string_unicode": "包含无效字符",
    "string_control_character": "包含不允许的控制字符",
    "string_blank": "此项不能为空",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "int_from_float": "应为整数",
    "float_type": "应为数字",
    "float_parsing": "应为数字",
    "decimal_parsing": "应为数字",
    "bool_type": "应为是或否",
    "bool_parsing": "应为是或否",
    "greater_than": "应大于 {gt}",
    "greater_than_equal": "不能小于 {ge}",
    "less_than": "应小于 {lt}",
    "less_than_equal": "不能大于 {le}",
    "too_short": "至少需要 {min_length} 项",
    "too_long": "最多只能有 {max_length} 项",
    "list_type": "应为列表",
    "dict_type": "格式不正确",
    "model_type": "格式不正确",
    "model_attributes_type": "格式不正确",
    "literal_error": "取值不在允许范围内",
    "enum": "取值不在允许范围内",
    "date_parsing": "日期格式不正确",
    "date_from_datetime_parsing": "日期格式不正确",
    "date_type": "日期格式不正确",
    "datetime_parsing": "时间格式不正确",
    "datetime_from_date_parsing": "时间格式不正确",
    "datetime_type": "时间格式不正确",
    "date_out_of_range": "日期须在 {earliest} 至 {latest} 之间",
    "uuid_parsing": "标识格式不正确",
    "uuid_type": "标识格式不正确",
    "extra_forbidden": "不允许提交此项",
    "json_invalid": "JSON 格式错误",
    "json_type": "JSON 格式错误",
    "value_error": "取值不正确",
    "assertion_error": "取值不正确",
}
_DEFAULT_PHRASE = "取值不正确"
_FAILED = "请求失败"
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _phrase(error_type: str, ctx: Mapping[str, Any] | None) -> str:
    template = _PHRASES.get(error_type, _DEFAULT_PHRASE)
    safe = {k: v for k, v in (ctx or {}).items() if isinstance(v, int | float | str)}
    try:
        return template.format(**safe)
    except (KeyError, IndexError, ValueError):
        return _DEFAULT_PHRASE


def _field_path(loc: Sequence[Any]) -> str:
    parts = list(loc)
    if parts and parts[0] in _LOCATIONS:
        source = parts.pop(0)
        if not parts:
            return str(source)
    return ".".join(str(p) for p in parts)


def field_errors(errors: Sequence[Any]) -> list[FieldError]:
    """Translate pydantic errors to FieldErrors with Chinese messages, dropping the input values."""
    result: list[FieldError] = []
    for err in errors:
        error_type = str(err.get("type", "value_error"))
        result.append(
            FieldError(
                field=_field_path(err.get("loc", ())),
                code=error_type,
                message=_phrase(error_type, err.get("ctx")),
            )
        )
    return result


_HTTP_ERRORS: dict[int, tuple[str, str]] = {
    400: ("request.malformed", "请求格式不正确"),
    401: ("auth.missing_token", "请先登录"),
    403: ("auth.forbidden", "无权执行此操作"),
    404: ("request.not_found", "请求的资源不存在"),
    405: ("request.method_not_allowed", "不支持该请求方法"),
    406: ("request.not_acceptable", "不支持请求的响应格式"),
    413: ("request.too_large", "提交的内容过大"),
    415: ("request.unsupported_media_type", "不支持的内容类型"),
    429: ("request.too_many", "操作过于频繁，请稍后重试"),
}


async def _app_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AppError)
    log.info(
        "request refused",
        extra={"code": exc.code, "status": exc.status, "detail_en": exc.detail_en},
    )
    return await _respond(
        request,
        exc.status,
        exc.code,
        exc.message,
        field=exc.field,
        fields=exc.fields,
        extra=exc.extra,
        headers=exc.headers,
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return await _respond(request, 400, "request.malformed_json", "提交的内容不是有效的 JSON")
    fields = field_errors(errors)
    log.info(
        "request invalid",
        extra={"code": "request.invalid", "fields": [f"{f.field}:{f.code}" for f in fields]},
    )
    return await _respond(request, 422, "request.invalid", INVALID_REQUEST_MESSAGE, fields=fields)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code == 400 and isinstance(exc.__cause__, UnicodeDecodeError):
        return await _respond(request, 400, "request.not_utf8", "提交的内容不是有效的 UTF-8 文本")
    if exc.status_code == 400 and isinstance(exc.__cause__, ValueError):
        return await _respond(request, 400, "request.malformed_json", "提交的内容不是有效的 JSON")
    code, message = _HTTP_ERRORS.get(
        exc.status_code,
        ("internal", INTERNAL_MESSAGE) if exc.status_code >= 500 else ("request.failed", _FAILED),
    )
    return await _respond(request, exc.status_code, code, message, headers=headers)


def log_unhandled(exc: BaseException) -> None:
    """Log an unexpected exception; the formatter masks personal data, and so does this message."""
    log.error(
        "unhandled %s: %s",
        type(exc).__name__,
        mask_personal_data(str(exc)),
        exc_info=(type(exc), exc, exc.__traceback__),
    )


# PostgreSQL's refusals of text it cannot store (U+0000 in text or jsonb): the request's fault.
# Request models refuse control characters first; this is the net under any path that slips.
_UNSTORABLE_TEXT = frozenset({"22021", "22P05"})  # character_not_in_repertoire, untranslatable


@dataclass(frozen=True)
class Unexpected:
    """How to answer an exception nothing handled: status, code, message and headers."""

    status: int
    code: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups; `exc` itself when it is not one."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def _unavailable_leaf(exc: BaseException) -> bool:
    if isinstance(exc, AppError | DomainError):
        return exc.status == 503  # PeerUnavailable, StorageUnavailable, ...
    return is_transient(exc)


def is_unavailable(exc: BaseException) -> bool:
    """True when `exc` says a dependency is away for the moment (the database unreachable or
    restarting, a dropped connection, a pool that timed out, a lost serialization race; the
    shared rule of `eventkit.transient`), not that the code or the request is wrong. An
    exception group is when every exception in it is."""
    found = leaves(exc)
    return bool(found) and all(_unavailable_leaf(e) for e in found)


def _retry_after_of(exc: BaseException) -> int:
    seconds = UNAVAILABLE_RETRY_AFTER
    for leaf in leaves(exc):
        headers = getattr(leaf, "headers", None)
        value = headers.get("Retry-After") if isinstance(headers, Mapping) else None
        if isinstance(value, str) and value.isascii() and value.isdigit():
            seconds = max(seconds, int(value))
        retry_after = getattr(leaf, "retry_after", None)
        if isinstance(retry_after, int | float) and not isinstance(retry_after, bool):
            seconds = max(seconds, int(retry_after))
    return seconds


def unexpected(exc: BaseException) -> Unexpected:
    """How to answer an exception nothing handled, logged as it deserves: a dependency away
    for the moment (`is_unavailable`) is a 503 `service.unavailable` with Retry-After; text the
    database cannot store is the request's fault (422); anything else is a 500."""
    if is_unavailable(exc):
        log.warning(
            "dependency unavailable",
            extra={"error": "; ".join(describe(e) for e in leaves(exc))[:500]},
        )
        retry_after = str(_retry_after_of(exc))
        return Unexpected(503, UNAVAILABLE_CODE, UNAVAILABLE_MESSAGE, {"Retry-After": retry_after})
    if getattr(exc, "sqlstate", None) in _UNSTORABLE_TEXT:
        log.warning("text refused by the database", extra={"exception": type(exc).__name__})
        return Unexpected(422, "request.invalid_text", "提交的内容包含不允许的字符")
    log_unhandled(exc)
    return Unexpected(500, "internal", INTERNAL_MESSAGE)


async def _internal_error(request: Request, exc: Exception) -> Response:
    answer = unexpected(exc)
    return await _respond(
        request, answer.status, answer.code, answer.message, headers=answer.headers
    )


async def _group_error(request: Request, exc: Exception) -> Response:
    """An exception group (a task group in a route, a middleware's): one error the handlers
    know (a refusal, a peer away) is answered as that error; anything else as `unexpected`."""
    found = leaves(exc)
    if len(found) == 1:
        only = found[0]
        if isinstance(only, DomainError):
            return await _domain_error(request, only)
        if isinstance(only, AppError):
            return await _app_error(request, only)
        if isinstance(only, HTTPException):
            return await _http_error(request, only)
    return await _internal_error(request, exc)


def app_error_of(exc: DomainError) -> AppError:
    """The HTTP form of a domain error: its code, message and status; Retry-After if it has one."""
    retry_after = getattr(exc, "retry_after", None)
    headers = {"Retry-After": str(int(retry_after))} if retry_after is not None else None
    return AppError(
        exc.code, exc.message, exc.detail_en, status=exc.status, field=exc.field, headers=headers
    )


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return await _app_error(request, app_error_of(exc))


def install_error_handlers(app: FastAPI) -> None:
    """Map domain, AppError, validation, HTTP, grouped and unexpected errors to the shared body
    (a dependency away for the moment: 503 with Retry-After, never 500)."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ExceptionGroup, _group_error)
    app.add_exception_handler(Exception, _internal_error)
