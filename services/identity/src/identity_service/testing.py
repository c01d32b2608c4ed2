"""Test support for other services' and end-to-end tests: identity's app in process, and the
answers to its captchas.

End-to-end tests drive the running system from outside and import no service; they read an
answer with `python -m identity_service.testing captcha-answer --dsn DSN CAPTCHA_ID` (identity's
settings from the environment, as the running service has them). Never installed as a command.

SMS codes are read where a person reads them: from the SMS sandbox's messages (`sms_sandbox`,
`latest_sms_code`), never from identity's database.

A captcha's answer is stored only as a keyed hash; with the wired service (its secret) a test
finds the answer by trying the 390,625 four-character answers (well under a second). Never used
by the service itself.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp

from identity_service.adapters.captcha import ALPHABET, LENGTH
from identity_service.bootstrap import Identity
from identity_service.settings import DEV_ONLY_SMS_SECRET
from servicekit.auth import JwksClient, TokenVerifier
from servicekit.signing import IDENTITY_ISSUER
from servicekit.testing import free_port, serve, serve_in_process

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


@contextmanager
def sms_sandbox(log_path: Path) -> Iterator[str]:
    """The SMS gateway sandbox (`sandboxes.sms:app`, its public secret) as a uvicorn process:
    its base URL, for IDENTITY_SMS_URL."""
    env = {**os.environ, "SANDBOX_SMS_SECRET": DEV_ONLY_SMS_SECRET}
    with serve("sandboxes.sms:app", env, log_path, ready_path="/healthz") as url:
        yield url


async def sms_messages(sandbox_url: str, mobile: str) -> list[dict[str, Any]]:
    """The messages the SMS sandbox delivered to `mobile`, newest first (its test-only read
    endpoint, docs/providers.md)."""
    async with httpx.AsyncClient(base_url=sandbox_url, timeout=10) as http:
        response = await http.post("/_sandbox/messages/search", json={"mobile": mobile})
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages


async def latest_sms_code(sandbox_url: str, mobile: str) -> str:
    """The 6-digit code in the newest message to `mobile` (AssertionError when there is none)."""
    messages = await sms_messages(sandbox_url, mobile)
    assert messages, f"no SMS to {mobile[:3]}****{mobile[-4:]}"
    found = re.search(r"\d{6}", messages[0]["text"])
    assert found is not None, messages[0]["text"]
    return found.group(0)


async def request_sms_code(
    client: httpx.AsyncClient, identity: Identity, sandbox_url: str, mobile: str
) -> str:
    """Ask identity's API (on `client`) for a registration code to `mobile`, solving the captcha,
    and read the code the SMS sandbox received."""
    captcha = (await client.get("/api/identity/captcha")).json()
    sent = await client.post(
        "/api/identity/sms-codes",
        json={
            "mobile": mobile,
            "purpose": "register",
            "captcha_id": captcha["captcha_id"],
            "captcha_answer": await captcha_answer(identity, captcha["captcha_id"]),
        },
    )
    assert sent.status_code == 202, sent.text
    return await latest_sms_code(sandbox_url, mobile)


async def sms_code_via(identity: Identity, mobile: str, client: str = "10.9.9.9") -> str:
    """A registration code sent to `mobile` through the wired service (captcha solved), read
    from the SMS sandbox it sends through (a number that is not one gets a made-up code)."""
    from identity_service.adapters.sms import HttpSmsSender
    from identity_service.service_layer.sms_codes import Purpose, SendSmsCode

    if not re.fullmatch(r"1[3-9]\d{9}", mobile):
        return "000000"
    sender = identity.sms_sender
    assert isinstance(sender, HttpSmsSender), "needs the HTTP sender on a sandbox"
    captcha = await identity.captchas.issue()
    answer = await captcha_answer(identity, captcha.captcha_id)
    await identity.sms_codes.send(
        SendSmsCode(mobile, Purpose.REGISTER, captcha.captcha_id, answer, client)
    )
    return await latest_sms_code(sender.base_url, mobile)


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
