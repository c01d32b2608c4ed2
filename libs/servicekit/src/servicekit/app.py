"""`create_app`: one FastAPI application with the platform's errors, limits, context, probes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

from fastapi import FastAPI

from eventkit.logs import configure_logging
from eventkit.settings import PlatformSettings
from servicekit.auth import JwksClient, TokenVerifier, VerifiesTokens
from servicekit.context import RequestContext
from servicekit.errors import ErrorBody, install_error_handlers
from servicekit.health import Check, health_router
from servicekit.limits import BodySizeLimit, RequestText
from servicekit.metrics import metrics_router
from servicekit.openapi import document_errors
from servicekit.signing import IDENTITY_ISSUER

DEFAULT_MAX_BODY_BYTES = 256 * 1024


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
    an async `close` are closed at shutdown. Other options go to `FastAPI(...)`.
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


def identity_verified_lifespan(
    service_name: str,
    start: Callable[[], Awaitable[S]],
    attach: Callable[[FastAPI, S, TokenVerifier], None],
    identity_url: Callable[[], str],
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The lifespan of a service that verifies identity's tokens: configure logging, start the
    wired service, attach it with a verifier on identity's JWKS, and close both on shutdown.

    `identity_url` is read at startup (settings come from the environment then).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = PlatformSettings()
        configure_logging(service_name, platform.log_level, json_lines=platform.log_json)
        service = await start()
        jwks = JwksClient(f"{identity_url().rstrip('/')}/.well-known/jwks.json")
        attach(app, service, TokenVerifier(jwks, issuer=IDENTITY_ISSUER))
        try:
            yield
        finally:
            await jwks.aclose()
            await service.close()

    return lifespan
