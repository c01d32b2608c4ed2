"""`create_app`: one FastAPI application with the platform's errors, limits, context, probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from eventkit.logs import configure_logging
from eventkit.settings import PlatformSettings
from eventkit.transient import describe, is_transient
from servicekit.auth import JwksClient, TokenVerifier, VerifiesTokens
from servicekit.context import RequestContext
from servicekit.errors import (
    UNAVAILABLE_CODE,
    UNAVAILABLE_MESSAGE,
    ErrorBody,
    answer_error,
    install_error_handlers,
)
from servicekit.health import Check, health_router
from servicekit.limits import BodySizeLimit, RequestText
from servicekit.metrics import metrics_router
from servicekit.openapi import document_errors
from servicekit.signing import IDENTITY_ISSUER

DEFAULT_MAX_BODY_BYTES = 256 * 1024

log = logging.getLogger("servicekit.app")


def create_app(
    title: str,
    *,
    version: str,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_limits: Mapping[str, int] | None = None,
    health_checks: Mapping[str, Check] | None = None,
    advisory_checks: Mapping[str, Check] | None = None,
    readiness_timeout: float = 2.0,
    token_verifier: VerifiesTokens | None = None,
    **fastapi_options: Any,
) -> FastAPI:
    """A FastAPI app with error handlers, body limits, request ids, /healthz, /readyz, /metrics.

    `body_limits` maps path prefixes to their own byte limits; `token_verifier` (if given) is put on
    `app.state.token_verifier` for the auth dependencies. `health_checks` gate /readyz,
    `advisory_checks` are only reported there (`servicekit.health.health_router`); checks with
    an async `close` are closed at shutdown. While a `Startup` waits for the database the app
    answers 503 (`UntilStarted`). Other options go to `FastAPI(...)`.
    """
    responses = {"default": {"model": ErrorBody}, **fastapi_options.pop("responses", {})}
    closable = [
        c
        for c in [*(health_checks or {}).values(), *(advisory_checks or {}).values()]
        if callable(getattr(c, "close", None))
    ]
    if closable:
        fastapi_options["lifespan"] = _closing(fastapi_options.get("lifespan"), closable)
    app = FastAPI(title=title, version=version, responses=responses, **fastapi_options)
    install_error_handlers(app)
    document_errors(app)
    # Added last runs first: the request context wraps the body limit so 413s carry a request id.
    app.add_middleware(UntilStarted)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes, overrides=body_limits)
    app.add_middleware(RequestText)
    app.add_middleware(RequestContext)
    app.include_router(
        health_router(health_checks or {}, advisory=advisory_checks, timeout=readiness_timeout)
    )
    app.include_router(metrics_router())
    if token_verifier is not None:
        app.state.token_verifier = token_verifier
    return app


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def _closing(lifespan: Lifespan | None, checks: list[Any]) -> Lifespan:
    """The app's lifespan, then the checks' clients closed at shutdown."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        try:
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            for check in checks:
                await check.close()

    return run


S = TypeVar("S", bound="Closable")


class Closable(Protocol):
    """A wired service that releases its pools and clients on shutdown."""

    async def close(self) -> None:
        """Release what the service holds."""
        ...


STARTING = "service_starting"  # app.state flag: the wired service is not there yet
# Paths that answer while the service is starting: the probes, metrics, the API document.
_OPEN_WHILE_STARTING = frozenset(
    {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)


def is_starting(app: Any) -> bool:
    """Whether `app` is waiting for its service to start (see `Startup`)."""
    return bool(getattr(getattr(app, "state", None), STARTING, False))


class UntilStarted:
    """Pure-ASGI middleware: while the app's `Startup` waits for its dependencies, every request
    but the probes, metrics, the API document and static files is a 503 `service.unavailable`
    with Retry-After (the web UI's HTML page for its pages), never a 500 from a service that is
    not there yet. Inactive once started, and in apps wired without a `Startup` (tests)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if (
            scope["type"] == "http"
            and is_starting(scope.get("app"))
            and path not in _OPEN_WHILE_STARTING
            and not path.startswith("/static/")
        ):
            await answer_error(scope, receive, send, 503, UNAVAILABLE_CODE, UNAVAILABLE_MESSAGE)
            return
        await self.app(scope, receive, send)


class Startup(Generic[S]):
    """Start a service at the app's startup without making its dependencies a reason to exit.

    `async with Startup(app, "media", start, on_started):` tries `start()` once (for at most
    `first_attempt_timeout` seconds). Success: `on_started(service)` and the app serves. A
    transient failure (`eventkit.transient`: PostgreSQL down or restarting, a timeout): the app
    serves anyway, answering 503 (`UntilStarted`) with /readyz not ready and /healthz alive,
    while a background task tries again with backoff until `start()` succeeds. Any other
    failure at the first attempt (a wrong password, a missing database, bad settings) is
    raised: the process exits at once, saying why. On exit the background task is cancelled;
    `service` is the started service (None if it never started), for the caller to close.
    """

    def __init__(
        self,
        app: FastAPI,
        service_name: str,
        start: Callable[[], Awaitable[S]],
        on_started: Callable[[S], None],
        *,
        first_attempt_timeout: float = 15.0,
        base_delay: float = 0.5,
        max_delay: float = 15.0,
    ) -> None:
        self.app = app
        self.service_name = service_name
        self.service: S | None = None
        self._start = start
        self._on_started = on_started
        self._first_attempt_timeout = first_attempt_timeout
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Startup[S]:
        setattr(self.app.state, STARTING, True)
        try:
            service = await asyncio.wait_for(self._start(), self._first_attempt_timeout)
        except Exception as exc:
            if not is_transient(exc):
                setattr(self.app.state, STARTING, False)
                raise
            log.warning(
                "%s: dependencies unavailable at startup; answering 503 until they are back",
                self.service_name,
                extra={"error": describe(exc)},
            )
            self._task = asyncio.create_task(
                self._keep_trying(), name=f"{self.service_name}-startup"
            )
        else:
            self._started(service)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def started(self) -> bool:
        """Whether the service is up."""
        return self.service is not None

    def _started(self, service: S) -> None:
        self._on_started(service)
        self.service = service
        setattr(self.app.state, STARTING, False)

    async def _keep_trying(self) -> None:
        """Try `start()` again until it succeeds; never raises (but is cancellable)."""
        attempt = 0
        while True:
            attempt += 1
            cap = min(self._max_delay, self._base_delay * 2 ** min(attempt - 1, 16))
            await asyncio.sleep(cap / 2 + random.random() * cap / 2)
            try:
                service = await self._start()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if is_transient(exc):
                    log.warning(
                        "%s: still waiting for dependencies (attempt %d)",
                        self.service_name, attempt, extra={"error": describe(exc)},
                    )  # fmt: skip
                else:  # not the moment's fault: say so loudly, /readyz stays not ready
                    log.error(
                        "%s: startup failed (attempt %d); retrying",
                        self.service_name, attempt, exc_info=exc,
                        extra={"error": describe(exc)},
                    )  # fmt: skip
                continue
            try:
                self._started(service)
            except Exception:
                log.exception("%s: attaching the started service failed", self.service_name)
                await service.close()
                continue
            log.info("%s: started after %d attempts", self.service_name, attempt + 1)
            return


def identity_verified_lifespan(
    service_name: str,
    start: Callable[[], Awaitable[S]],
    attach: Callable[[FastAPI, S, TokenVerifier], None],
    identity_url: Callable[[], str],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The lifespan of a service that verifies identity's tokens: configure logging, start the
    wired service (a `Startup`: while its database is away the API answers 503 and starts once
    it is back), attach it with a verifier on identity's JWKS, and close both on shutdown.

    `identity_url` is read at startup (settings come from the environment then).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = PlatformSettings()
        configure_logging(service_name, platform.log_level, json_lines=platform.log_json)
        jwks = JwksClient(f"{identity_url().rstrip('/')}/.well-known/jwks.json")
        verifier = TokenVerifier(jwks, issuer=IDENTITY_ISSUER)
        startup = Startup(app, service_name, start, lambda service: attach(app, service, verifier))
        try:
            async with startup:
                yield
        finally:
            await jwks.aclose()
            if startup.service is not None:
                await startup.service.close()

    return lifespan
