"""The fault lane's nemesis: a seeded schedule of faults, injected one at a time into the running
system, each followed by a measured recovery.

Kinds (every one at least `min_each` times per run):

- `api_kill`      SIGKILL one service's API, start it again after a moment
- `worker_kill`   SIGKILL one service's worker (relay + consumers), start it again
- `broker_kill`   SIGKILL one of the three Kafka brokers, start it again after seconds
- `pg_restart`    PostgreSQL restarted in immediate mode (no checkpoint: crash recovery)
- `s3_stop`       SeaweedFS stopped for tens of seconds, then started
- `net_latency`   Toxiproxy latency (with jitter) between the services and PG, Kafka or S3
- `net_bandwidth` a bandwidth limit on one of those links
- `net_reset`     connections on one link reset (reset_peer) for a few seconds
- `net_partition` one link cut (proxy disabled) for `partition_seconds`

Only the process an injection killed is started again by the nemesis, as the injection's
second half. Any other process found exited is a process that needed a hand restart: it is
started again (so the run goes on) and reported.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

KINDS = (
    "api_kill",
    "worker_kill",
    "broker_kill",
    "pg_restart",
    "s3_stop",
    "net_latency",
    "net_bandwidth",
    "net_reset",
    "net_partition",
)
LINKS = ("postgres", "kafka", "s3")


class Target(Protocol):
    """What the nemesis can do to the system (implemented by the lane's harness)."""

    services: Sequence[str]
    brokers: int

    def kill_process(self, service: str, kind: str) -> None: ...
    def start_process(self, service: str, kind: str) -> None: ...
    def exited_processes(self) -> list[tuple[str, str]]: ...
    def kill_broker(self, index: int) -> None: ...
    def start_broker(self, index: int) -> None: ...
    def restart_postgres_immediate(self) -> None: ...
    def stop_s3(self) -> None: ...
    def start_s3(self) -> None: ...
    def proxies(self, link: str) -> list[str]: ...
    def add_toxic(self, proxy: str, name: str, kind: str, attributes: dict[str, int]) -> None: ...
    def remove_toxic(self, proxy: str, name: str) -> None: ...
    def set_enabled(self, proxy: str, enabled: bool) -> None: ...
    async def settled(self) -> tuple[bool, str]: ...


@dataclass(frozen=True)
class Profile:
    """How big a run is and how long its faults last."""

    injections: int
    min_each: int
    partition_seconds: float
    s3_seconds: tuple[float, float]
    net_seconds: tuple[float, float]
    broker_down_seconds: tuple[float, float]
    gap_seconds: tuple[float, float]
    recovery_timeout: float = 120.0


FULL = Profile(
    injections=108,
    min_each=10,
    partition_seconds=30.0,
    s3_seconds=(10.0, 30.0),
    net_seconds=(5.0, 15.0),
    broker_down_seconds=(5.0, 20.0),
    gap_seconds=(1.0, 4.0),
)
SHORT = Profile(  # inside `make test`: at least 30 injections, every kind
    injections=30,
    min_each=3,
    partition_seconds=8.0,
    s3_seconds=(5.0, 8.0),
    net_seconds=(2.0, 4.0),
    broker_down_seconds=(3.0, 6.0),
    gap_seconds=(0.5, 1.5),
)


@dataclass
class Injection:
    """One fault: what, where, when it started and ended, and how long recovery took."""

    number: int
    kind: str
    where: str
    started: float = 0.0
    ended: float = 0.0
    recovered: float | None = None  # seconds after `ended` until settled; None: never
    detail: str = ""

    @property
    def recovery_seconds(self) -> float | None:
        return None if self.recovered is None else self.recovered


@dataclass
class Nemesis:
    """Runs a seeded schedule of injections against a `Target`."""

    target: Target
    profile: Profile
    seed: int
    clock: Callable[[], float] = time.monotonic
    injections: list[Injection] = field(default_factory=list)
    hand_restarts: list[str] = field(default_factory=list)

    def schedule(self) -> list[str]:
        """The kinds in order: every kind `min_each` times, the rest drawn at random, shuffled."""
        rng = random.Random(self.seed)
        kinds = [k for k in KINDS for _ in range(self.profile.min_each)]
        while len(kinds) < self.profile.injections:
            kinds.append(rng.choice(KINDS))
        rng.shuffle(kinds)
        return kinds

    async def run(self, origin: float, stop_early: Callable[[], bool] = lambda: False) -> None:
        """Inject every scheduled fault, one at a time, waiting for recovery after each."""
        rng = random.Random(self.seed * 7919 + 1)
        for number, kind in enumerate(self.schedule(), start=1):
            if stop_early():
                break
            injection = await self._inject(number, kind, rng, origin)
            self.injections.append(injection)
            injection.recovered = await self._recover(injection, origin)
            recovered = "never" if injection.recovered is None else f"{injection.recovered:.1f}s"
            print(
                f"[{injection.ended:7.1f}s] #{number} {kind} {injection.where}: recovered"
                f" {recovered}",
                flush=True,
            )
            await asyncio.sleep(rng.uniform(*self.profile.gap_seconds))

    async def _recover(self, injection: Injection, origin: float) -> float | None:
        """Seconds from the fault's end until the system settled (None: not within the
        profile's timeout); restarts and reports processes that exited on their own."""
        deadline = self.clock() + self.profile.recovery_timeout
        while self.clock() < deadline:
            self._hand_restart_exited(injection)
            ok, why = await self.target.settled()
            if ok:
                return self.clock() - origin - injection.ended
            injection.detail = why
            await asyncio.sleep(0.5)
        return None

    def _hand_restart_exited(self, injection: Injection) -> None:
        for service, kind in self.target.exited_processes():
            self.hand_restarts.append(
                f"#{injection.number} {injection.kind}: {service} {kind} exited by itself"
            )
            self.target.start_process(service, kind)

    async def _inject(self, number: int, kind: str, rng: random.Random, origin: float) -> Injection:
        p = self.profile
        t = self.target
        injection = Injection(number, kind, "")

        hold = asyncio.sleep
        injection.started = self.clock() - origin
        if kind in ("api_kill", "worker_kill"):
            service = rng.choice(list(t.services))
            process = "api" if kind == "api_kill" else "worker"
            injection.where = f"{service} {process}"
            t.kill_process(service, process)
            await hold(rng.uniform(0.5, 3.0))
            t.start_process(service, process)
        elif kind == "broker_kill":
            index = rng.randrange(t.brokers)
            injection.where = f"kafka-{index}"
            t.kill_broker(index)
            await hold(rng.uniform(*p.broker_down_seconds))
            await asyncio.to_thread(t.start_broker, index)
        elif kind == "pg_restart":
            injection.where = "postgres"
            await asyncio.to_thread(t.restart_postgres_immediate)
        elif kind == "s3_stop":
            injection.where = "s3"
            await asyncio.to_thread(t.stop_s3)
            await hold(rng.uniform(*p.s3_seconds))
            await asyncio.to_thread(t.start_s3)
        else:
            link = rng.choice(LINKS)
            proxies = t.proxies(link)
            if link == "kafka":  # one broker's link at a time, as one host's network fails
                proxies = [rng.choice(proxies)]
            injection.where = ",".join(proxies)
            seconds = (
                p.partition_seconds if kind == "net_partition" else rng.uniform(*p.net_seconds)
            )
            if kind == "net_partition":
                for proxy in proxies:
                    t.set_enabled(proxy, False)
                await hold(seconds)
                for proxy in proxies:
                    t.set_enabled(proxy, True)
            else:
                toxic, attributes = _toxic(kind, rng)
                injection.detail = f"{toxic} {attributes}"
                for proxy in proxies:
                    t.add_toxic(proxy, f"fault-{number}", toxic, attributes)
                await hold(seconds)
                for proxy in proxies:
                    t.remove_toxic(proxy, f"fault-{number}")
        injection.ended = self.clock() - origin
        return injection


def _toxic(kind: str, rng: random.Random) -> tuple[str, dict[str, int]]:
    if kind == "net_latency":
        return "latency", {"latency": rng.choice((200, 500, 1000)), "jitter": 100}
    if kind == "net_bandwidth":
        return "bandwidth", {"rate": rng.choice((16, 64, 256))}  # KB/s
    if kind == "net_reset":
        return "reset_peer", {"timeout": 0}
    raise ValueError(kind)
