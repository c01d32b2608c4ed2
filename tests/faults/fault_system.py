"""The fault lane's system: a stack of its own (PostgreSQL, a three-broker KRaft Kafka cluster,
SeaweedFS) with Toxiproxy between the services and each of them, and the whole system on it as
`make run` starts it (every API and worker, the sandboxes, the demo data) plus the lane's
synthetic candidates. It is the nemesis's `Target`.

The services reach PostgreSQL, Kafka and S3 only through the proxies; the lane's own checks
(the ops CLI, the captcha backdoor, the checker's queries) go direct, so a network fault hits the
system and not the judge.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
from e2e_support import RunningSystem
from fault_people import Person, write_seeds
from ops.lag import declared_projections, measure_lag

from devstack import Stack, StackConfig, demo
from devstack.endpoints import Endpoints
from devstack.system import DEFAULT, Launched, launch, stop_all, wait_ready
from devstack.toxiproxy import Toxiproxy, proxy_stack
from eventkit.operations import service_key
from servicekit.testing import free_port

ROOT = Path(__file__).resolve().parents[2]
BROKERS = 3


@dataclass
class FaultSystem:
    """The running system under faults (the nemesis's target)."""

    stack: Stack
    toxiproxy: Toxiproxy
    direct: Endpoints
    proxied: Endpoints
    running: RunningSystem
    brokers: int = BROKERS
    _lag: LagProbe | None = None

    @property
    def services(self) -> list[str]:
        return [s.name for s in self.running.system.services]

    # --- processes ----------------------------------------------------------------------------

    def kill_process(self, service: str, kind: str) -> None:
        item = self.running.process(service, kind)
        if item.process.poll() is None:
            os.kill(item.process.pid, signal.SIGKILL)
            item.process.wait(timeout=10)

    def start_process(self, service: str, kind: str) -> None:
        item = self.running.process(service, kind)
        if item.process.poll() is not None:
            self.running.restart(item)

    def exited_processes(self) -> list[tuple[str, str]]:
        return [
            (i.service.name, i.kind) for i in self.running.launched if i.process.poll() is not None
        ]

    # --- the stack's parts --------------------------------------------------------------------

    def kill_broker(self, index: int) -> None:
        self.stack.kill(f"kafka-{index}")

    def start_broker(self, index: int) -> None:
        self.stack.start_part(f"kafka-{index}")

    def restart_postgres_immediate(self) -> None:
        self.stack.restart("postgres", mode="immediate")

    def stop_s3(self) -> None:
        self.stack.kill("s3")

    def start_s3(self) -> None:
        self.stack.start_part("s3")

    # --- the network --------------------------------------------------------------------------

    def proxies(self, link: str) -> list[str]:
        if link == "kafka":
            return [f"kafka-{i}" for i in range(self.brokers)]
        return [link]

    def add_toxic(self, proxy: str, name: str, kind: str, attributes: dict[str, int]) -> None:
        self.toxiproxy.add_toxic(proxy, kind, attributes, name=name)  # type: ignore[arg-type]

    def remove_toxic(self, proxy: str, name: str) -> None:
        self.toxiproxy.remove_toxic(proxy, name)

    def set_enabled(self, proxy: str, enabled: bool) -> None:
        self.toxiproxy.set_enabled(proxy, enabled)

    # --- settled ------------------------------------------------------------------------------

    async def settled(self) -> tuple[bool, str]:
        """Every process alive, every API ready, every relay and projection caught up."""
        exited = self.exited_processes()
        if exited:
            return False, f"exited: {exited}"
        apis = [i for i in self.running.launched if i.kind == "api"]
        ready = await asyncio.gather(*(asyncio.to_thread(_ready, i) for i in apis))
        not_ready = [i.service.name for i, ok in zip(apis, ready, strict=True) if not ok]
        if not_ready:
            return False, f"not ready: {not_ready}"
        return await self.caught_up()

    async def caught_up(self) -> tuple[bool, str]:
        """Every relay published everything, every projection at its topics' end (`ops lag`'s
        measurement, in process, over the direct addresses)."""
        if self._lag is None:
            self._lag = await LagProbe.open(self.running)
        return await self._lag.caught_up()

    async def close(self) -> None:
        if self._lag is not None:
            await self._lag.close()
            self._lag = None


class LagProbe:
    """`ops lag` as a library: pools on every service's database, the declared projections."""

    def __init__(self, pools: dict[str, asyncpg.Pool], projections: dict[str, Any], kafka: str):
        self.pools = pools
        self.projections = projections
        self.kafka = kafka

    @classmethod
    async def open(cls, running: RunningSystem) -> LagProbe:
        pools = {}
        projections = {}
        for service in running.system.services:
            key = service_key(service.name)
            pools[key] = await asyncpg.create_pool(
                running.dsn(service.name), min_size=1, max_size=2
            )
            projections[key] = await declared_projections(key, pools[key])
        return cls(pools, projections, running.endpoints.kafka_bootstrap)

    async def caught_up(self) -> tuple[bool, str]:
        try:
            report = await measure_lag(self.pools, self.projections, self.kafka)
        except Exception as exc:  # a pool's connection lost to a PostgreSQL restart
            return False, f"lag not measured: {type(exc).__name__}"
        if report.kafka != "measured":
            return False, f"kafka: {report.kafka[:200]}"
        errors = [f"{s.service}: {s.error}" for s in report.services if s.error]
        if errors:
            return False, "; ".join(errors)[:300]
        worst = report.max_lag()
        return worst == 0, f"max lag {worst}"

    async def close(self) -> None:
        for pool in self.pools.values():
            await pool.close()


def _ready(item: Launched) -> bool:
    path = "/healthz" if item.service.package == "sandboxes" else "/readyz"
    return _answers_200(f"http://127.0.0.1:{item.service.port}{path}")


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@contextmanager
def fault_system(run_dir: Path, persons: list[Person]) -> Iterator[FaultSystem]:
    """Start the stack (three brokers, fault listeners), Toxiproxy and its proxies, the
    system on the proxies with the demo data and `persons` on the roster; stop it all after."""
    run_dir.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        StackConfig(run_dir=run_dir / "stack", kafka_brokers=BROKERS, kafka_fault_listeners=True)
    )
    direct = stack.start()
    try:
        toxiproxy = Toxiproxy.start(run_dir / "toxiproxy", stack=stack)
        try:
            proxied = proxy_stack(direct, toxiproxy)
            with system_on(run_dir, direct, proxied, persons) as running:
                yield FaultSystem(stack, toxiproxy, direct, proxied, running)
        finally:
            toxiproxy.stop()
    finally:
        stack.stop()


@contextmanager
def system_on(
    run_dir: Path, direct: Endpoints, proxied: Endpoints, persons: list[Person]
) -> Iterator[RunningSystem]:
    """The system launched on `proxied` (what the services use) with the demo data and
    `persons` loaded through `direct`; stopped after."""
    launched: list[Launched] = []
    roster, seed = write_seeds(persons, run_dir)
    # Inherited by the processes: the sandboxes' extra people, and one client address standing
    # for a province of homes (identity's per-address SMS limit would stop the workload).
    lane_env = {"SANDBOX_EXTRA_SEED": str(seed), "IDENTITY_SMS_SENDS_PER_ADDRESS": "10000"}
    previous = {k: os.environ.get(k) for k in lane_env}
    try:
        names = [s.name for s in DEFAULT.services] + [s.name for s in DEFAULT.sandboxes]
        system = DEFAULT.with_(ports={name: free_port() for name in names})
        os.environ.update(lane_env)
        launched = launch(ROOT, proxied, run_dir / "logs", system)
        running = RunningSystem(system, direct, launched, run_dir / "logs")
        if not wait_ready(launched, tuple(names), timeout=180):
            running.print_logs()
            raise RuntimeError("the fault lane's system did not become ready (logs above)")
        seeded = demo.seed(direct, run_dir, system)
        if any("failed" in line for line in seeded):
            raise RuntimeError(f"demo data not loaded: {seeded}")
        imported = subprocess.run(
            [str(Path(sys.executable).parent / "identity"), "roster-import", str(roster),
             "--actor", "ops:fault-lane", "--dsn", direct.pg_dsn("identity")],
            env={**os.environ, **direct.to_env()}, capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip
        if imported.returncode != 0:
            raise RuntimeError(f"roster import failed: {imported.stdout}{imported.stderr}")
        yield running
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stop_all(launched)


async def wait_settled(system: FaultSystem, timeout: float) -> tuple[bool, str]:
    """Until the system settled (or `timeout`); whether it did, and why not."""
    deadline = time.monotonic() + timeout
    why = ""
    while time.monotonic() < deadline:
        ok, why = await system.settled()
        if ok:
            return True, ""
        await asyncio.sleep(1)
    return False, why
