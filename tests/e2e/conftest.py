"""The end-to-end lane's system: the whole of it as `make run` starts it — the five services'
APIs and workers and the CHSI and NEEA sandboxes, as processes, with the demo data — but on free
ports and on databases of its own, on the test stack (`stack`), so it collides neither with
other tests nor with a developer's `make run`.

Set up only with the system's own tools: `devstack.system.launch` and `devstack.demo.seed` (the
services' own CLIs). One system for the lane (`e2e_system`, started once, ~25 s, and stopped
after the lane's last test, so its consumers never join other tests' consumer groups); the
journey uses 张建国, the worker-kill test three other people, so they share it. Its logs are
printed when a test that uses it fails.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import RunningSystem

from devstack import demo
from devstack.endpoints import Endpoints
from devstack.system import DEFAULT, launch, stop_all, wait_ready
from devstack.testing import create_database, drop_database
from servicekit.testing import free_port

ROOT = Path(__file__).resolve().parents[2]


LAST = "test_openapi_seeded.py"  # its calls change the system's state: it goes last


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Put the seeded fuzzing after the lane's other tests, still inside the lane (the system
    is package-scoped and stops after the lane's last test)."""
    here = Path(__file__).parent
    lane = [i for i, item in enumerate(items) if here in item.path.parents]
    if not lane:
        return
    fuzz = [items[i] for i in lane if items[i].path.name == LAST]
    rest = [items[i] for i in lane if items[i].path.name != LAST]
    items[lane[0] : lane[-1] + 1] = rest + fuzz


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Remember each phase's report on the test, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"e2e_report_{call.when}", report)
    return report


@pytest.fixture(scope="package")
def e2e_system(
    stack: Endpoints, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningSystem]:
    """The whole system on free ports and fresh databases, demo data loaded; stopped and its
    databases dropped afterwards."""
    tag = uuid.uuid4().hex[:8]
    names = [s.name for s in DEFAULT.services] + [s.name for s in DEFAULT.sandboxes]
    databases = {s.name: f"e2e_{tag}_{s.database}" for s in DEFAULT.services}
    system = DEFAULT.with_(ports={name: free_port() for name in names}, databases=databases)
    run_dir = tmp_path_factory.mktemp("e2e-system")
    logs = run_dir / "logs"
    for database in databases.values():
        asyncio.run(create_database(stack, database))
    launched = []
    try:
        launched = launch(ROOT, stack, logs, system)
        running = RunningSystem(system, stack, launched, logs)
        if not start_up(running, tuple(names)):
            running.print_logs()
            pytest.fail("the system did not become ready (logs above)", pytrace=False)
        seeded = demo.seed(stack, run_dir, system)
        if any("failed" in line for line in seeded):
            running.print_logs()
            pytest.fail(f"demo data not loaded: {seeded}", pytrace=False)
        assert start_up(running, tuple(names)), "a process died after the start"
        yield running
    finally:
        stop_all(launched)
        for database in databases.values():
            asyncio.run(drop_database(stack, database))


def start_up(running: RunningSystem, names: tuple[str, ...]) -> bool:
    """Wait until every API and sandbox answers and no process has exited; whether all are up.
    A process that dies while the system starts fails the lane (it once did: the API and the
    worker raced creating the web session schema, fixed in servicekit.web.EndedSessions)."""
    ready = wait_ready(running.launched, names, timeout=120)
    crashed = [i for i in running.launched if i.process.poll() is not None]
    return ready and not crashed


@pytest.fixture(autouse=True)
def _logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """The system's logs after a failed test (when the test used `e2e_system`)."""
    yield
    report = getattr(request.node, "e2e_report_call", None)
    if report is not None and report.failed and "e2e_system" in request.fixturenames:
        running: RunningSystem = request.getfixturevalue("e2e_system")
        running.print_logs()
