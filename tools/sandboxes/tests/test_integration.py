"""Over real sockets: the CHSI sandbox under uvicorn calling a real HTTP receiver, and the CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import uvicorn

from sandboxes import chsi

pytestmark = pytest.mark.integration

SECRET = "integration-secret"
AUTH = {"Authorization": f"Bearer {SECRET}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Receiver:
    """A tiny callback receiver: answers scripted statuses, records what it got."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/chsi/callback"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            if status < 300:
                state.arrived.set()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def chsi_server() -> Iterator[str]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    app = chsi.create_app(secret=SECRET, public_url=base, callback_backoff=(0.05, 0.1, 0.2))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "sandbox did not start"
        time.sleep(0.02)
    yield base
    server.should_exit = True
    thread.join(timeout=10)


def _verify(headers: dict[str, str], body: bytes) -> None:
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", headers["x-chsi-signature"])
    assert match
    t, v1 = match.groups()
    assert abs(time.time() - int(t)) <= 300
    expected = hmac.new(SECRET.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(v1, expected)


def _approve(base: str, callback_url: str, record_ids: list[str]) -> dict[str, Any]:
    with httpx.Client(base_url=base, headers=AUTH, timeout=5) as api:
        created = api.post(
            "/api/v1/authorizations",
            json={"state": "0b7a4c1e-2f3d-4e5a-8b9c-1d2e3f4a5b6c", "callback_url": callback_url},
        ).json()
    with httpx.Client(timeout=5) as browser:
        page = created["qr_content"]
        login = browser.post(
            page,
            data={"action": "login", "id_number": "140106199107221029", "password": "sandbox-li"},
        )
        session = re.search(r'name="session" value="([^"]+)"', login.text)
        assert session
        started = time.monotonic()
        done = browser.post(
            page,
            data={"action": "approve", "session": session.group(1), "record_id": record_ids},
        )
        assert done.status_code == 200
        # The page never waits for the callback and its retries.
        assert time.monotonic() - started < 2.0
    result: dict[str, Any] = created
    return result


def test_signed_callback_reaches_a_real_receiver(chsi_server: str, receiver: Receiver) -> None:
    created = _approve(chsi_server, receiver.url(), ["chsi-rec-0004"])
    assert receiver.arrived.wait(5)
    assert len(receiver.received) == 1
    headers, body = receiver.received[0]
    _verify(headers, body)
    payload = json.loads(body)
    assert payload["ticket"] == created["ticket"]
    assert payload["status"] == "approved"
    with httpx.Client(base_url=chsi_server, headers=AUTH) as api:
        fetched = api.get(f"/api/v1/authorizations/{created['ticket']}").json()
    assert fetched["status"] == "approved"
    assert [r["record_id"] for r in fetched["records"]] == ["chsi-rec-0004"]
    assert fetched["records"][0]["level"] == "硕士研究生"
    assert fetched["records"][0]["transcript"] == []


def test_callback_retried_after_500(chsi_server: str, receiver: Receiver) -> None:
    receiver.statuses.extend([500, 500])
    _approve(chsi_server, receiver.url(), ["chsi-rec-0003"])
    assert receiver.arrived.wait(5)
    assert len(receiver.received) == 3
    bodies = {body for _, body in receiver.received}
    assert len(bodies) == 1
    for headers, body in receiver.received:
        _verify(headers, body)


@pytest.mark.parametrize("provider", ["chsi", "neea", "sms"])
def test_cli_serves_healthz(provider: str) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "sandboxes.cli", provider, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "sandbox did not start"
                time.sleep(0.1)
        assert response.json() == {"status": "ok"}
    finally:
        process.terminate()
        process.wait(timeout=10)
