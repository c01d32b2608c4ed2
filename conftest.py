"""Shared fixtures: the local stack (real PostgreSQL, Kafka, S3), a fresh database per test, and
the browser (system Chromium via Playwright) with screenshots."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, async_playwright

from devstack import Endpoints, Stack, StackConfig, browser
from devstack.testing import create_database, drop_database
from eventkit.db import create_pool
from eventkit.kafka import KafkaConnection
from eventkit.migrations import migrate

# Tests run on the public development keys and secrets, which services refuse otherwise.
os.environ.setdefault("EVENTKIT_DEV_MODE", "true")


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoints]:
    """The running stack: the one `make test` started (DEVSTACK_* variables), or a new one."""
    if os.environ.get("DEVSTACK_PG_PORT"):
        yield Endpoints.from_env()
        return
    stack = Stack(StackConfig(run_dir=tmp_path_factory.mktemp("stack")))
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.fixture
def secured_kafka(stack: Endpoints) -> KafkaConnection:
    """The stack's SASL_SSL listener (SCRAM-SHA-512, its own CA), as DEVSTACK_KAFKA_SASL_* say."""
    assert stack.kafka_sasl_bootstrap, "the stack has no SASL_SSL listener (old stack.env?)"
    return KafkaConnection(
        stack.kafka_sasl_bootstrap,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        username=stack.kafka_username,
        password=stack.kafka_password,
        ca_file=Path(stack.kafka_ca_file),
    )


@pytest.fixture
async def database(stack: Endpoints) -> AsyncIterator[str]:
    """A fresh database with eventkit's schema; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    dsn = await create_database(stack, name)
    await migrate(dsn, "test")
    yield dsn
    await drop_database(stack, name)


@pytest.fixture(scope="module")
def module_database(stack: Endpoints) -> Iterator[str]:
    """An empty database for one test module (a service under uvicorn migrates it itself);
    dropped afterwards."""
    name = f"m_{uuid.uuid4().hex[:12]}"
    dsn = asyncio.run(create_database(stack, name))
    try:
        yield dsn
    finally:
        asyncio.run(drop_database(stack, name))


@pytest.fixture
async def pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the fresh database."""
    p = await create_pool(database, min_size=1, max_size=24)
    yield p
    await p.close()


# --- browser tests (system Chromium via Playwright; mark them `integration` and `browser`) ------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium() -> AsyncIterator[Browser]:
    """Headless system Chromium for the session; fails (never skips) when it is not installed."""
    missing = browser.missing_chromium_message()
    if missing:
        pytest.fail(missing, pytrace=False)
    async with async_playwright() as pw:
        b = await browser.launch_chromium(pw)
        yield b
        await b.close()


@pytest_asyncio.fixture(loop_scope="session")
async def browser_page(chromium: Browser) -> AsyncIterator[Page]:
    """A page in a fresh context (zh-CN, 1366x900); both closed afterwards."""
    context = await browser.new_context(chromium)
    page = await context.new_page()
    yield page
    await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def console_errors(browser_page: Page) -> list[str]:
    """Console errors and uncaught exceptions of `browser_page`, collected as they happen.

    Async: Playwright subscribes listeners on the running event loop."""
    errors: list[str] = []
    browser_page.on(
        "console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None
    )
    browser_page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    return errors


@pytest.fixture
def screenshots(request: pytest.FixtureRequest) -> browser.Screenshots:
    """`await screenshots.shot(page, "step")` saves `<root>/<module>/<test>/01-step.png`, ...
    (root: $SCREENSHOT_DIR or .run/screenshots); returns the path."""
    return browser.Screenshots.for_test(
        browser.screenshot_root(request.config.rootpath),
        request.node.path.stem,
        request.node.name,
    )
