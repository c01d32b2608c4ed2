"""Helpers of the end-to-end lane: the running system, the sandbox people, the captcha answer,
logins and the ops CLI. Nothing here imports a service package: the system is driven through
its public HTTP (and, in the journey, the browser).

    from e2e_support import RunningSystem, ZHANG, captcha_answer, ...
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageDraw

from devstack.demo import ROSTER
from devstack.endpoints import Endpoints
from devstack.system import Launched, System, restart, tail
from sandboxes.seed import load_seed

ROOT = Path(__file__).resolve().parents[2]
OPS = Path(sys.executable).parent / "ops"
CANDIDATE_PASSWORD = "Zikao#2026e2e"
POINT = "140105"  # 太原市小店区: the demo point reviewer's


@dataclass(frozen=True)
class Person:
    """A sandbox person (tools/sandboxes/README.md) on the demo roster (devstack.demo)."""

    ticket: str
    id_number: str
    name: str
    chsi_password: str


def _person(ticket: str) -> Person:
    """One of the people `devstack.demo` seeds, with their password in the CHSI sandbox's seed."""
    ticket_, id_number, name, *_ = next(row for row in ROSTER if row[0] == ticket)
    passwords = {p["id_number"]: p["password"] for p in load_seed("chsi_seed.json")["people"]}
    return Person(ticket_, id_number, name, passwords[id_number])


ZHANG = _person("010118100001")
LI = _person("010118100002")
WANG = _person("010118100003")
ZHAO = _person("010118100004")  # the seeded fuzzing's (test_openapi_seeded)
LIU = _person("010118100005")
CHEN = _person("010118100006")


# --- the captcha: the lane's one test-only backdoor ----------------------------------------------
# A captcha's answer is drawn into its image and stored only as an HMAC; no public interface
# gives it away, by design. The lane asks identity's test support, as a separate process (it
# imports no service): it reads the captcha's row and tries the answers with identity's secret.


async def captcha_answer(identity_dsn: str, captcha_id: str) -> str:
    """The answer of a live captcha, from identity's database (see above)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "identity_service.testing", "captcha-answer",
        "--dsn", identity_dsn, captcha_id,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, f"no answer for captcha {captcha_id}: {err.decode()[-2000:]}"
    return out.decode().strip()


# --- SMS codes: read where a person reads them, from the SMS sandbox's messages -----------------


async def latest_sms_code(running: RunningSystem, mobile: str) -> str:
    """The 6-digit code in the newest message the SMS sandbox delivered to `mobile`."""
    async with httpx.AsyncClient(base_url=running.url("sms-sandbox"), timeout=10) as http:
        found = await http.post("/_sandbox/messages/search", json={"mobile": mobile})
    found.raise_for_status()
    messages = found.json()["messages"]
    assert messages, "the SMS sandbox got no message for this number"
    code = re.search(r"\d{6}", messages[0]["text"])
    assert code is not None, messages[0]["text"]
    return code.group(0)


async def sms_code(http: httpx.AsyncClient, running: RunningSystem, mobile: str) -> str:
    """Ask identity's API for a registration code to `mobile` (captcha solved); the code the
    SMS sandbox received."""
    identity = running.url("identity")
    captcha = (await http.get(f"{identity}/api/identity/captcha")).json()
    sent = await http.post(
        f"{identity}/api/identity/sms-codes",
        json={"mobile": mobile, "purpose": "register", "captcha_id": captcha["captcha_id"],
              "captcha_answer": await captcha_answer(running.dsn("identity"),
                                                     captcha["captcha_id"])},
    )  # fmt: skip
    assert sent.status_code == 202, sent.text
    return await latest_sms_code(running, mobile)


# --- the running system -------------------------------------------------------------------------


@dataclass
class RunningSystem:
    """The launched system: where its parts listen, their databases and processes."""

    system: System
    endpoints: Endpoints
    launched: list[Launched]
    logs: Path
    restarts: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        """A service's API or a sandbox: "identity", "application", …, "chsi-sandbox"."""
        return self.system.url(name)

    def dsn(self, service: str) -> str:
        """The database of a service."""
        return self.endpoints.pg_dsn(self.system.service(service).database)

    def process(self, service: str, kind: str) -> Launched:
        """The launched `kind` ("api" or "worker") process of `service`."""
        [found] = [i for i in self.launched if i.service.name == service and i.kind == kind]
        return found

    def kill_worker(self, service: str) -> None:
        """SIGKILL the service's worker (no clean shutdown: no flush, no commit, no leave)."""
        item = self.process(service, "worker")
        os.kill(item.process.pid, signal.SIGKILL)
        item.process.wait(timeout=10)

    def restart_worker(self, service: str) -> None:
        """Start the killed worker again (same command, environment and log)."""
        self.restart(self.process(service, "worker"))

    def restart(self, item: Launched) -> None:
        """Start an exited process again (same command, environment and log)."""
        self.launched[self.launched.index(item)] = restart(item)
        self.restarts.append(f"{item.service.name} {item.kind}")

    def exited(self) -> list[str]:
        """Processes that exited (should be none)."""
        return [f"{i.service.name} {i.kind}" for i in self.launched if i.process.poll() is not None]

    def ops_env(self) -> dict[str, str]:
        """The environment of the ops CLI: each service's DSN in OPS_PG_DSN_*."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPS_PG_DSN_")}
        env.update(self.endpoints.to_env())
        for service in self.system.services:
            key = service.name.upper().replace("-", "_")
            env[f"OPS_PG_DSN_{key}"] = self.dsn(service.name)
        env["EVENTKIT_KAFKA_BOOTSTRAP"] = self.endpoints.kafka_bootstrap
        return env

    def ops(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run `.venv/bin/ops <args>` against this system."""
        return subprocess.run(
            [str(OPS), *args], env=self.ops_env(), capture_output=True, text=True,
            timeout=timeout, check=False, cwd=ROOT,
        )  # fmt: skip

    def print_logs(self, lines: int = 40) -> None:
        """The last lines of every process's log, for a failing test's output."""
        for item in self.launched:
            print(f"--- {item.service.name} {item.kind} ({item.log_path})")
            print(tail(item.log_path, lines))


def ops_json(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON an ops command printed (asserting it succeeded)."""
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def verify_every_projection(
    running: RunningSystem, listed: subprocess.CompletedProcess[str]
) -> None:
    """`ops rebuild … --verify` for each rebuildable projection `ops projections` lists."""
    assert listed.returncode == 0, f"{listed.stdout}\n{listed.stderr}"
    projections = json.loads(listed.stdout)
    services = {p["service"].replace("-", "_") for p in projections}
    # identity only publishes; every other service keeps projections of others' events
    assert {"application", "credential_verify", "media", "review"} <= services, projections
    rebuildable = [p for p in projections if p["rebuildable"]]
    assert rebuildable, projections

    def rebuild(p: dict[str, Any]) -> str | None:
        source = "store" if p.get("from_store") else "kafka"
        done = running.ops("rebuild", p["service"], p["projection"], "--from", source, "--verify")
        if done.returncode == 0:
            return None
        return (f"{p['service']} {p['projection']}: exit {done.returncode}"
                f" ({'differs' if done.returncode == 1 else 'error'})\n"
                f"{done.stdout[-6000:]}\n{done.stderr[-2000:]}")  # fmt: skip

    # each into its own shadow, so they run side by side (the lane's time budget)
    with ThreadPoolExecutor(max_workers=len(rebuildable)) as pool:
        failures = [f for f in pool.map(rebuild, rebuildable) if f]
    assert not failures, "\n".join(failures)


# --- photos -------------------------------------------------------------------------------------


def certificate_jpeg(title: str = "CET-4 SCORE REPORT  480", seed: int = 0) -> bytes:
    """A 1600x1200 JPEG that looks like a certificate scan (`seed` makes each one different)."""
    image = Image.new("RGB", (1600, 1200), (248, 244, 230 - seed % 20))
    pen = ImageDraw.Draw(image)
    pen.rectangle((40, 40, 1560, 1160), outline=(30, 60, 140), width=12)
    pen.text((660, 200), title, fill=(20, 20, 20))
    for row in range(5):
        pen.line((300, 420 + row * 100, 1300, 420 + row * 100), fill=(120, 120, 120), width=3)
    pen.text((300, 1000), f"#{seed}", fill=(90, 90, 90))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=88)
    return out.getvalue()


# --- the JSON APIs, as a client of the system -----------------------------------------------------


async def login(
    running: RunningSystem, http: httpx.AsyncClient, identifier: str, password: str, *,
    staff: bool = False,
) -> dict[str, str]:  # fmt: skip
    """Log in through identity's API (captcha included); the Authorization header."""
    identity = running.url("identity")
    captcha = (await http.get(f"{identity}/api/identity/captcha")).json()
    answer = await captcha_answer(running.dsn("identity"), captcha["captcha_id"])
    if staff:
        path, body = "staff/login", {"username": identifier}
    else:
        path, body = "login", {"identifier": identifier}
    done = await http.post(
        f"{identity}/api/identity/{path}",
        json={**body, "password": password, "captcha_id": captcha["captcha_id"],
              "captcha_answer": answer},
    )  # fmt: skip
    assert done.status_code == 200, done.text
    return {"Authorization": f"Bearer {done.json()['access_token']}"}


CASE_NUMBER = re.compile(r"MK\d{10}")
