"""SMS gateway sandbox (短信网关): accepts template messages and keeps them for tests to read."""

from __future__ import annotations

import os
import re
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sandboxes.faults import DEFAULT_FAULT_TIMEOUT, FaultInjector, install_sandbox_basics

DEFAULT_SECRET = "sms-sandbox-secret"  # noqa: S105 - the documented sandbox secret
MOBILE = re.compile(r"^1[3-9]\d{9}$")
# The templates registered with the gateway: id -> (text with {placeholders}, required params).
TEMPLATES: dict[str, str] = {
    "SMS_REGISTER_CODE": "【自考免考】您的注册验证码为{code}，5分钟内有效。",
}
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
MAX_KEPT_PER_MOBILE = 50


class SendRequest(BaseModel):
    """Body of `POST /api/v1/messages`."""

    mobile: str = Field(min_length=1, max_length=20)
    template_id: str = Field(min_length=1, max_length=64)
    params: dict[str, str] = Field(default_factory=dict, max_length=10)


class MessageQuery(BaseModel):
    """Body of `POST /_sandbox/messages/search` (the mobile stays out of the URL)."""

    mobile: str = Field(min_length=1, max_length=20)


class SmsSandbox:
    """In-memory outbox of delivered messages, per mobile number."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.messages: dict[str, list[dict[str, Any]]] = {}

    def reset(self) -> None:
        """Forget every message."""
        with self._lock:
            self.messages = {}

    def send(self, body: SendRequest) -> tuple[int, dict[str, Any]]:
        """Render the template and keep the message: (status, answer)."""
        mobile = body.mobile.strip()
        if not MOBILE.match(mobile):
            return 400, {"error": "invalid_mobile", "message": "not a mainland mobile number"}
        template = TEMPLATES.get(body.template_id)
        if template is None:
            return 400, {"error": "unknown_template", "message": "no such template"}
        missing = [p for p in _PLACEHOLDER.findall(template) if p not in body.params]
        if missing:
            return 400, {"error": "invalid_params", "message": f"missing: {', '.join(missing)}"}
        message = {
            "message_id": secrets.token_hex(12),
            "mobile": mobile,
            "template_id": body.template_id,
            "params": dict(body.params),
            "text": _PLACEHOLDER.sub(lambda m: body.params[m.group(1)], template),
            "sent_at": self._clock().isoformat(),
        }
        with self._lock:
            kept = self.messages.setdefault(mobile, [])
            kept.insert(0, message)  # newest first
            del kept[MAX_KEPT_PER_MOBILE:]
        return 200, {"message_id": message["message_id"], "status": "accepted"}

    def of(self, mobile: str) -> list[dict[str, Any]]:
        """The messages sent to `mobile`, newest first."""
        with self._lock:
            return [dict(m) for m in self.messages.get(mobile.strip(), [])]


def create_app(
    *,
    secret: str = DEFAULT_SECRET,
    fault_timeout: float = DEFAULT_FAULT_TIMEOUT,
    clock: Callable[[], datetime] | None = None,
) -> FastAPI:
    """The SMS gateway sandbox app."""
    sandbox = SmsSandbox(clock or (lambda: datetime.now(UTC)))
    faults = FaultInjector(timeout_seconds=fault_timeout)
    app = FastAPI(title="SMS gateway sandbox (短信网关)")
    app.state.sandbox = sandbox
    app.state.faults = faults
    install_sandbox_basics(app, secret=secret, faults=faults, reset=sandbox.reset)

    @app.post("/api/v1/messages")
    async def send_message(body: SendRequest) -> JSONResponse:
        status, answer = sandbox.send(body)
        return JSONResponse(answer, status_code=status)

    @app.post("/_sandbox/messages/search", tags=["sandbox"])
    async def messages_of(body: MessageQuery) -> dict[str, Any]:
        """Test-only: the messages sent to one mobile number, newest first."""
        return {"messages": sandbox.of(body.mobile)}

    return app


app = create_app(
    secret=os.environ.get("SANDBOX_SMS_SECRET", DEFAULT_SECRET),
    fault_timeout=float(
        os.environ.get("SANDBOX_FAULT_TIMEOUT_SECONDS", str(DEFAULT_FAULT_TIMEOUT))
    ),
)
