"""Per-request context: request ids (as the log correlation id), access log, latency metric."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Collection, Sequence
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from eventkit.logs import correlation_id
from servicekit.errors import answer_error, is_unavailable, log_unhandled, unexpected
from servicekit.metrics import REQUEST_SECONDS

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
_UNMATCHED = "<unmatched>"
# Methods are a metric label: any other verb a client sends folds into one value.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
OTHER_METHOD = "OTHER"

access_log = logging.getLogger("servicekit.access")


def accept_request_id(value: str | None) -> str:
    """The incoming id if it is sane (≤ 64 chars of [A-Za-z0-9-]), else a fresh uuid4."""
    if value is not None and _SANE_ID.fullmatch(value):
        return value
    return str(uuid.uuid4())


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/applications/{id}`), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else _UNMATCHED


class RequestContext:
    """Pure-ASGI middleware: request id, correlation id, access log line, latency histogram.

    The id is stored in `request.state.request_id`; unexpected exceptions become a 500 `internal`
    (a dependency away for the moment: a 503 `service.unavailable` with Retry-After), as the
    web UI's HTML error page for its own pages.
    Query strings and bodies are never logged. `quiet_paths` (probes, metrics) log at DEBUG.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        quiet_paths: Collection[str] = ("/healthz", "/readyz", "/metrics"),
    ) -> None:
        self.app = app
        self._quiet = frozenset(quiet_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the request with its id set; log and measure it when it ends."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = None
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        rid = accept_request_id(incoming)
        scope.setdefault("state", {})["request_id"] = rid
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"
                ]
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            await send(message)

        token = correlation_id.set(rid)
        begun = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if started:  # a streamed body or a background task: the status is already sent
                if is_unavailable(exc):
                    access_log.warning(
                        "dependency unavailable after the response started",
                        extra={"error": type(exc).__name__, "request_id": rid},
                    )
                else:
                    log_unhandled(exc)
                raise
            answer = unexpected(exc)
            await answer_error(
                scope, receive, send_with_id, answer.status, answer.code, answer.message,
                headers=answer.headers,
            )  # fmt: skip
        finally:
            elapsed = time.perf_counter() - begun
            template = route_template(scope)
            method = str(scope.get("method", ""))
            if method not in KNOWN_METHODS:
                method = OTHER_METHOD
            REQUEST_SECONDS.labels(method, template, str(status)).observe(elapsed)
            access_log.log(
                logging.DEBUG if scope.get("path") in self._quiet else logging.INFO,
                "%s %s %d",
                method,
                template,
                status,
                extra={
                    "method": method,
                    "path": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                    "request_id": rid,
                },
            )
            correlation_id.reset(token)


def correlation_id_of(request: Request) -> uuid.UUID:
    """The request id as the correlation id of the events a request causes (a fresh one if the
    caller's X-Request-ID is not a UUID)."""
    try:
        return uuid.UUID(str(getattr(request.state, "request_id", "")))
    except ValueError:
        return uuid.uuid4()


def parse_networks(text: str) -> tuple[IPv4Network | IPv6Network, ...]:
    """`10.0.0.0/8, 127.0.0.1` as networks; ValueError for anything else."""
    return tuple(ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip())


def client_address(
    request: Request, trusted_proxies: Sequence[IPv4Network | IPv6Network] = ()
) -> str:
    """The address of the person behind the request, for throttling and logs.

    The peer's own address, unless the peer is a trusted proxy (our web UIs, the ingress): then
    the right-most `X-Forwarded-For` entry that is not itself a trusted proxy. Entries a client
    could have forged (left of the first untrusted one) are never used.
    """
    peer = request.client.host if request.client else "unknown"
    if not trusted_proxies or not _within(peer, trusted_proxies):
        return peer
    forwarded = [p.strip() for p in request.headers.get("x-forwarded-for", "").split(",")]
    for hop in reversed([p for p in forwarded if p]):
        if not _within(hop, trusted_proxies):
            try:
                return str(ip_address(hop))
            except ValueError:
                return peer  # garbage from the proxy: fall back to the proxy itself
    return peer


def _within(address: str, networks: Sequence[IPv4Network | IPv6Network]) -> bool:
    try:
        ip = ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)
