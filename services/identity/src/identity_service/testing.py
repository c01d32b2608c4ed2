"""Test support for other services' and end-to-end tests: identity's app in process, and the
answers to its captchas.

End-to-end tests drive the running system from outside and import no service; they read an
answer with `python -m identity_service.testing captcha-answer --dsn DSN CAPTCHA_ID` (identity's
settings from the environment, as the running service has them). Never installed as a command.

A captcha's answer is stored only as a keyed hash; with the wired service (its secret) a test
finds the answer by trying the 390,625 four-character answers (well under a second). Never used
by the service itself.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from identity_service.adapters.captcha import ALPHABET, LENGTH
from identity_service.bootstrap import Identity
from servicekit.auth import JwksClient, TokenVerifier
from servicekit.signing import IDENTITY_ISSUER
from servicekit.testing import free_port, serve_in_process

IDENTITY_URL = "http://identity"  # the base URL clients of `in_process` use


@asynccontextmanager
async def in_process(
    identity: Identity,
) -> AsyncIterator[tuple[httpx.ASGITransport, TokenVerifier]]:
    """Identity's real app on `identity`, reachable at IDENTITY_URL through the transport, and a
    verifier on its published JWKS (as deployed services verify tokens)."""
    from identity_service.entrypoints.api import attach, build_app

    app = build_app()
    attach(app, identity)
    transport = httpx.ASGITransport(app=app)
    jwks = httpx.AsyncClient(transport=transport, base_url=IDENTITY_URL)
    try:
        yield (
            transport,
            TokenVerifier(
                JwksClient(f"{IDENTITY_URL}/.well-known/jwks.json", http=jwks),
                issuer=IDENTITY_ISSUER,
            ),
        )
    finally:
        await jwks.aclose()


def _answering_503(_: Request) -> JSONResponse:
    body = {"error": {"code": "identity.unavailable", "message": "服务繁忙，请稍后重试",
                      "request_id": str(uuid.uuid4())}}  # fmt: skip
    return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})


class SocketIdentity:
    """Identity's real app on a real socket in this event loop, which a test can stop (an
    outage: connections refused), replace by a stand-in answering 503 to everything, and start
    again on the same port.

        server = SocketIdentity(identity)
        await server.start()              # server.url; server.verifier() verifies its tokens
        await server.stop()               # identity is gone
        await server.start(answering_503=True)
    """

    def __init__(self, identity: Identity) -> None:
        from identity_service.entrypoints.api import attach, build_app

        self._app = build_app()
        attach(self._app, identity)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._running: AsyncExitStack | None = None

    def verifier(self, *, min_refresh_interval: float = 10) -> TokenVerifier:
        """A verifier on the published JWKS, as a deployed service has one."""
        jwks = JwksClient(
            f"{self.url}/.well-known/jwks.json", min_refresh_interval=min_refresh_interval
        )
        return TokenVerifier(jwks, issuer=IDENTITY_ISSUER)

    async def start(self, *, answering_503: bool = False) -> None:
        """Serve identity (or the stand-in answering 503) on the port."""
        await self.stop()
        stack = AsyncExitStack()
        app: ASGIApp = unavailable_app() if answering_503 else self._app
        # As deployed: identity's own IDENTITY_TRUSTED_PROXIES decides whose X-Forwarded-For it
        # believes, not uvicorn's proxy headers (off, as in the manifests).
        await stack.enter_async_context(serve_in_process(app, port=self.port, proxy_headers=False))
        self._running = stack

    async def stop(self) -> None:
        """Stop serving (nothing listens on the port afterwards)."""
        if self._running is not None:
            running, self._running = self._running, None
            await running.aclose()


def unavailable_app() -> ASGIApp:
    """An identity that answers 503 (in the shared error body, Retry-After) to every request."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    return Starlette(
        routes=[Route("/{path:path}", _answering_503, methods=["GET", "POST", "PUT", "DELETE"])]
    )


async def captcha_answer(identity: Identity, captcha_id: uuid.UUID | str) -> str:
    """The answer of a live captcha (AssertionError when there is none)."""
    key = uuid.UUID(str(captcha_id))
    async with identity.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT answer_hash FROM identity.captchas WHERE id = $1", key)
    assert stored is not None, f"no captcha {key}"
    for chars in itertools.product(ALPHABET, repeat=LENGTH):
        answer = "".join(chars)
        if identity.captchas._hash(key, answer) == bytes(stored):
            return answer
    raise AssertionError(f"captcha {key} has no answer in the alphabet")


async def _answer(dsn: str, captcha_id: str) -> str:
    from eventkit.db import create_pool
    from identity_service.adapters.pii import PiiCipher, PiiSettings
    from identity_service.bootstrap import wire
    from identity_service.settings import IdentitySettings

    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        identity = wire(pool, IdentitySettings(), PiiCipher.from_settings(PiiSettings()))
        return await captcha_answer(identity, captcha_id)
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    """`python -m identity_service.testing captcha-answer --dsn DSN CAPTCHA_ID`: the answer."""
    parser = argparse.ArgumentParser(prog="python -m identity_service.testing")
    commands = parser.add_subparsers(dest="command", required=True)
    answer = commands.add_parser("captcha-answer", help="a live captcha's answer (tests only)")
    answer.add_argument("--dsn", required=True)
    answer.add_argument("captcha_id")
    args = parser.parse_args(argv)
    print(asyncio.run(_answer(args.dsn, args.captcha_id)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
