"""Request body size limits, enforced before and while the body is read, never buffered past."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventkit.text import ascii_int, has_control_characters
from servicekit.errors import (
    INVALID_REQUEST_MESSAGE,
    FieldError,
    answer_error,
)

TOO_LARGE_CODE = "request.too_large"
TOO_LARGE_MESSAGE = "提交的内容过大"


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes its limit (FastAPI re-raises it as is)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=f"request body exceeds {limit} bytes")
        self.limit = limit


class BodySizeLimit:
    """Pure-ASGI middleware: 413 `request.too_large` for bodies over `max_bytes`.

    `overrides` maps path prefixes to their own limits (the longest matching prefix wins),
    e.g. `{"/media/uploads": 3 * 1024 * 1024}`.
    """

    def __init__(
        self, app: ASGIApp, max_bytes: int, overrides: Mapping[str, int] | None = None
    ) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.app = app
        self.max_bytes = max_bytes
        self._overrides = sorted((overrides or {}).items(), key=lambda kv: len(kv[0]), reverse=True)

    def limit_for(self, path: str) -> int:
        """The byte limit that applies to `path`."""
        for prefix, limit in self._overrides:
            if path.startswith(prefix):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse by Content-Length up front, then count the bytes actually streamed."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = _content_length(scope)
        if declared == -1:
            await refuse(scope, receive, send, 400, "request.malformed", "请求格式不正确")
            return
        if declared is not None and declared > limit:
            await refuse(scope, receive, send, 413, TOO_LARGE_CODE, TOO_LARGE_MESSAGE)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            if received > limit:
                raise BodyTooLarge(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            if started:
                raise
            await refuse(scope, receive, send, 413, TOO_LARGE_CODE, TOO_LARGE_MESSAGE)


async def refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    code: str,
    message: str,
    fields: Sequence[FieldError] = (),
) -> None:
    """Answer from the middleware: a web UI's own HTML error page for its pages (a form posted
    with too big a photo must not show JSON to a candidate), else the JSON error body."""
    await answer_error(scope, receive, send, status, code, message, fields=fields)


class RequestText:
    """Pure-ASGI middleware: the same text rule as request bodies, for the URL.

    A query parameter (name or value) with a C0 control character other than tab and newline
    answers 422 `request.invalid` naming the parameter; a path with one answers 404 like any
    unknown path. Both would otherwise reach PostgreSQL (which refuses U+0000) or a log line.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the path and the query string before the app sees them."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if has_control_characters(str(scope.get("path", ""))):
            await refuse(scope, receive, send, 404, "request.not_found", "请求的资源不存在")
            return
        query = bytes(scope.get("query_string", b"")).decode("latin-1")
        if query:
            bad = [
                name if not has_control_characters(name) else "query"
                for name, value in parse_qsl(query, keep_blank_values=True)
                if has_control_characters(name) or has_control_characters(value)
            ]
            if bad:
                fields = [
                    FieldError(field=name, code="string_control_character", message=CONTROL_PHRASE)
                    for name in dict.fromkeys(bad)
                ]
                await refuse(
                    scope, receive, send, 422, "request.invalid", INVALID_REQUEST_MESSAGE, fields
                )
                return
        await self.app(scope, receive, send)


CONTROL_PHRASE = "包含不允许的控制字符"


def _content_length(scope: Scope) -> int | None:
    """The declared Content-Length; None when absent, -1 when it is not a sane number."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            number = ascii_int(value.decode("latin-1").strip())
            return -1 if number is None else number
    return None
