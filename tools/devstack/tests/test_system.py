"""Unit tests: the system's layout (ports, databases) and the environment each service gets."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from devstack import Endpoints
from devstack.system import DEFAULT, SANDBOXES, SERVICES, Launched, restart, service_env

pytestmark = pytest.mark.unit

ENDPOINTS = Endpoints("127.0.0.1", 5432, "u", "p", "127.0.0.1:9092", "http://127.0.0.1:8333",
                      "a", "s")  # fmt: skip


def test_make_run_keeps_its_fixed_ports_and_databases() -> None:
    assert DEFAULT.services == SERVICES and DEFAULT.sandboxes == SANDBOXES
    assert [s.port for s in SERVICES] == [8101, 8102, 8103, 8104, 8105]
    assert [s.database for s in SERVICES] == [
        "identity", "application", "credential_verify", "media", "review"
    ]  # fmt: skip
    env = service_env(SERVICES[1], ENDPOINTS)
    assert env["SERVICE_URL_IDENTITY"] == "http://127.0.0.1:8101"
    assert env["PROVIDER_URL_CHSI"] == "http://127.0.0.1:8201"
    assert env["EVENTKIT_PG_DSN"].endswith("/application")


def test_a_caller_gives_its_own_ports_and_databases_and_they_reach_every_peer() -> None:
    system = DEFAULT.with_(
        ports={"identity": 40101, "review": 40105, "chsi-sandbox": 40201},
        databases={"identity": "e2e_identity", "credential-verify": "e2e_cv"},
    )
    assert system.url("identity") == "http://127.0.0.1:40101"
    assert system.url("chsi-sandbox") == "http://127.0.0.1:40201"
    assert system.url("application") == "http://127.0.0.1:8102"  # not given: unchanged
    assert system.service("credential-verify").database == "e2e_cv"
    assert system.dsns(ENDPOINTS)["identity"].endswith("/e2e_identity")
    env = service_env(system.service("identity"), ENDPOINTS, system)
    assert env["EVENTKIT_PG_DSN"].endswith("/e2e_identity")
    review = service_env(system.service("review"), ENDPOINTS, system)
    assert review["SERVICE_URL_IDENTITY"] == "http://127.0.0.1:40101"
    assert review["SERVICE_URL_REVIEW"] == "http://127.0.0.1:40105"
    assert review["PROVIDER_URL_CHSI"] == "http://127.0.0.1:40201"
    assert review["EVENTKIT_PG_DSN"].endswith("/review")
    assert DEFAULT.url("identity") == "http://127.0.0.1:8101"  # DEFAULT itself unchanged


def test_unknown_names_are_refused() -> None:
    with pytest.raises(ValueError, match="no such service or sandbox: nope"):
        DEFAULT.with_(ports={"nope": 1})
    with pytest.raises(ValueError, match="chsi-sandbox"):
        DEFAULT.with_(databases={"chsi-sandbox": "x"})  # sandboxes have no database


def test_a_process_that_exited_starts_again_with_its_command_and_log(tmp_path: Path) -> None:
    log = tmp_path / "w.log"
    command = [sys.executable, "-c", "print('ran')"]
    with log.open("ab") as out:
        first = subprocess.Popen(command, stdout=out)
    first.wait(timeout=30)
    item = Launched(SERVICES[0], "worker", first, log, tuple(command), None)
    again = restart(item)
    assert again.process.wait(timeout=30) == 0
    assert log.read_text().split() == ["ran", "ran"]
    assert (again.command, again.kind, again.service) == (item.command, "worker", SERVICES[0])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(RuntimeError, match="still running"):
            restart(Launched(SERVICES[0], "worker", sleeper, log, tuple(command), None))
    finally:
        sleeper.kill()
        sleeper.wait(timeout=30)
