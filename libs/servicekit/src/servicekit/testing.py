"""Helpers for the services' tests: run an app under real uvicorn on a free port."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp

from servicekit.signing import Ed25519KeyPair, jwks


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serve(
    app: str,
    env: Mapping[str, str],
    log_path: Path,
    *,
    timeout: float = 60.0,
    port: int | None = None,
    ready_path: str = "/readyz",
) -> Iterator[str]:
    """Run `app` ("package.module:app") under uvicorn until `ready_path` answers 200; yield its
    base URL; stop it afterwards. Its output goes to `log_path`, never to an unread pipe."""
    port = port or free_port()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
             "--no-access-log"],
            env=dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(f"{url}{ready_path}", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{app} did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        _stop(process, timeout=15)


def _stop(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not stopped within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def run_module(module: str, env: Mapping[str, str], log_path: Path) -> Iterator[None]:
    """Run `python -m module` (a service's worker) with `env`, its output to `log_path`; stop
    it with SIGTERM afterwards."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module], env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield
    finally:
        _stop(process, timeout=30)


def print_logs(directory: Path, tail: int = 2500) -> None:
    """The last `tail` characters of every `*.log` in `directory`, for a failing test's output."""
    for log in sorted(directory.glob("*.log")):
        print(f"--- {log.name}\n{log.read_text(errors='replace')[-tail:]}")


@asynccontextmanager
async def serve_in_process(
    app: ASGIApp, *, port: int | None = None, timeout: float = 20.0, **config: Any
) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free port inside this event loop (a real socket, so
    other processes can call it back); yield its base URL. The app's lifespan is not run unless
    `lifespan="on"` is given: wire its state before entering. `config`: more of uvicorn's
    settings (`forwarded_allow_ips`, `lifespan`)."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", **{"lifespan": "off", **config}
        )
    )
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + timeout
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise RuntimeError("the in-process server did not start")
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=timeout)


@contextmanager
def serve_jwks(*keypairs: Ed25519KeyPair) -> Iterator[str]:
    """Serve a JWKS document of `keypairs` over HTTP (as identity serves its own) on a free
    port in a thread; yield the base URL a service's `*_IDENTITY_URL` can point at."""
    document = json.dumps(jwks(*keypairs)).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def check_documented_answer(
    document: Mapping[str, Any], method: str, path: str, status: int, headers: Any, body: str
) -> None:
    """Hold one answer of a fuzzed call to the service's OpenAPI document: no 5xx but a 503
    with `Retry-After`, every status declared for the operation, every error in `ErrorBody`."""
    described = f"{method.upper()} {path} -> {status}: {body[:500]}"
    operation = document["paths"][path].get(method.lower())
    if operation is None:
        # A method the path does not have (schemathesis tries those too): 405, or whatever
        # another route the concrete path matches answers (DELETE /photos/views is
        # DELETE /photos/{photo_id} with a bad id); never a server error.
        assert 400 <= status < 500, f"a method the document does not list: {described}"
        return
    declared = {int(code) for code in operation["responses"] if code.isdigit()}
    assert status < 500 or status == 503, described
    assert status in declared, f"undocumented status ({sorted(declared)}): {described}"
    if status == 503:
        retry_after = headers.get("retry-after") or headers.get("Retry-After")
        if isinstance(retry_after, list):  # schemathesis: a header's values
            retry_after = retry_after[0] if retry_after else None
        assert retry_after and str(retry_after).isascii() and str(retry_after).isdigit(), described
    if status >= 400:
        error = json.loads(body)["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str), described


class TcpForwarder:
    """A TCP forwarder on a free local port to `target_host:target_port`, for fault tests: put
    it between a client (an asyncpg pool, an S3 client) and the real server, then `cut()` every
    open connection, `refuse()` new ones (accepted and closed at once: the server is "down"),
    and `restore()` the link, all without restarting the client or the server.

        async with TcpForwarder("127.0.0.1", stack.pg_port) as link:
            dsn = dsn.replace(f":{stack.pg_port}/", f":{link.port}/")
            ...
            link.refuse()   # PostgreSQL unreachable: new connections fail, open ones are cut
            link.restore()  # back
    """

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = 0
        self.refusing = False
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> TcpForwarder:
        """Listen (on a free port unless `port` was set)."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Stop listening and cut every connection."""
        if self._server is not None:
            self._server.close()
            self.cut()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> TcpForwarder:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def connections(self) -> int:
        """How many connections are being forwarded now."""
        return len(self._pairs)

    def cut(self) -> None:
        """Reset every open connection (both sides); new ones are still forwarded."""
        for client, upstream in list(self._pairs):
            for writer in (client, upstream):
                if writer is not None:
                    _abort(writer)
        self._pairs.clear()

    def refuse(self) -> None:
        """Cut every open connection and close new ones at once, until `restore()`."""
        self.refusing = True
        self.cut()

    def restore(self) -> None:
        """Forward new connections again."""
        self.refusing = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            _abort(writer)
            return
        pair = (writer, up_writer)
        self._pairs.add(pair)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            self._tasks.difference_update(pumps)
            self._pairs.discard(pair)
            _abort(writer)
            _abort(up_writer)

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            return


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close a connection with a reset (no FIN handshake): what a dying server looks like."""
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()
