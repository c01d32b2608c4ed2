"""Schemathesis over identity's OpenAPI document, against the real service: never a 5xx."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from devstack import Endpoints
from identity_service.entrypoints.api import build_app

pytestmark = pytest.mark.integration

schema = schemathesis.openapi.from_dict(build_app().openapi())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _create_database(stack: Endpoints, name: str) -> None:
    admin = await asyncpg.connect(stack.pg_dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def server(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """identity's API under uvicorn on a free port, on a database of its own."""
    name = f"fuzz_{uuid.uuid4().hex[:10]}"
    asyncio.run(_create_database(stack, name))
    port = free_port()
    env = {**os.environ, "EVENTKIT_PG_DSN": stack.pg_dsn(name), "EVENTKIT_LOG_JSON": "true"}
    log_path = tmp_path_factory.mktemp("identity") / "api.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "identity_service.entrypoints.api:app",
         "--host", "127.0.0.1", "--port", str(port), "--no-access-log"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"identity did not start: {process.stderr.read().decode()[-2000:]}"
                )  # type: ignore[union-attr]
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
        assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_makes_a_server_error(case: schemathesis.Case, server: str) -> None:
    response = case.call(base_url=server, timeout=30)
    assert response.status_code < 500, (
        f"{case.method} {case.path} -> {response.status_code}: {response.text[:500]}"
    )
