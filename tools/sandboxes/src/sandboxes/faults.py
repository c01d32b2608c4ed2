"""Pieces shared by both sandboxes: client auth, fault injection, reset and health endpoints."""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

FaultMode = Literal["timeout", "error", "garbage", "none"]

DEFAULT_FAULT_TIMEOUT = 30.0
GARBAGE_BODY = b"<html><body><h1>502 Bad Gateway</h1><p>nginx</p></body></html>"


class FaultRequest(BaseModel):
    """Body of `POST /_sandbox/faults`."""

    mode: FaultMode
    count: int = Field(default=1, ge=0, le=10_000)


class FaultStateView(BaseModel):
    """The current fault state: the mode and how many `/api/*` calls it still applies to."""

    mode: FaultMode
    count: int


@dataclass
class FaultInjector:
    """Makes the next N calls to `/api/*` misbehave in one mode."""

    timeout_seconds: float = DEFAULT_FAULT_TIMEOUT

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._mode: FaultMode = "none"
        self._remaining = 0

    def set(self, mode: FaultMode, count: int) -> FaultStateView:
        """Arm `mode` for the next `count` calls; `none` (or a zero count) disarms."""
        with self._lock:
            if mode == "none" or count == 0:
                self._mode, self._remaining = "none", 0
            else:
                self._mode, self._remaining = mode, count
        return self.view()

    def clear(self) -> None:
        """Disarm every fault."""
        self.set("none", 0)

    def view(self) -> FaultStateView:
        """The current state."""
        with self._lock:
            return FaultStateView(mode=self._mode, count=self._remaining)

    def take(self) -> FaultMode:
        """Consume one faulty call, if armed, and say which mode applies to it."""
        with self._lock:
            if self._remaining <= 0:
                return "none"
            mode = self._mode
            self._remaining -= 1
            if self._remaining == 0:
                self._mode = "none"
            return mode


def _json_body(payload: dict[str, str]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


async def _send_raw(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ApiGuard:
    """ASGI middleware for `/api/*`: bearer client-secret check first, then injected faults."""

    def __init__(self, app: ASGIApp, *, secret: str, faults: FaultInjector) -> None:
        self.app = app
        self.secret = secret.encode()
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/api" or path.startswith("/api/")):
            await self.app(scope, receive, send)
            return
        if not self._authorised(scope):
            await _send_raw(
                send,
                401,
                _json_body({"error": "unauthorized", "message": "missing or wrong client secret"}),
                "application/json",
            )
            return
        mode = self.faults.take()
        if mode == "error":
            await _send_raw(
                send,
                500,
                _json_body({"error": "internal", "message": "sandbox fault injection: error"}),
                "application/json",
            )
            return
        if mode == "garbage":
            await _send_raw(send, 200, GARBAGE_BODY, "text/html; charset=utf-8")
            return
        if mode == "timeout":
            await asyncio.sleep(self.faults.timeout_seconds)
        await self.app(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(
                    token.strip(), self.secret
                )
        return False


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """Validation errors in the protocol's error shape instead of FastAPI's `detail`."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    fields = ", ".join(".".join(str(p) for p in e.get("loc", ())[1:]) for e in errors)
    return JSONResponse(
        status_code=422,
        content={"error": "invalid_request", "message": f"invalid fields: {fields or 'body'}"},
    )


def install_sandbox_basics(
    app: FastAPI,
    *,
    secret: str,
    faults: FaultInjector,
    reset: Callable[[], Awaitable[None] | None],
) -> None:
    """Add auth + faults for `/api/*`, `/_sandbox/faults`, `/_sandbox/reset` and `/healthz`."""
    app.add_middleware(ApiGuard, secret=secret, faults=faults)
    app.add_exception_handler(RequestValidationError, _validation_error)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/_sandbox/faults", tags=["sandbox"])
    async def get_faults() -> FaultStateView:
        return faults.view()

    @app.post("/_sandbox/faults", tags=["sandbox"])
    async def set_faults(body: FaultRequest) -> FaultStateView:
        return faults.set(body.mode, body.count)

    @app.post("/_sandbox/reset", tags=["sandbox"])
    async def reset_sandbox() -> dict[str, str]:
        outcome = reset()
        if outcome is not None:
            await outcome
        faults.clear()
        return {"status": "ok"}
