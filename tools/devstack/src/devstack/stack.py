"""The Stack: start PostgreSQL, Kafka and SeaweedFS concurrently, wait on their health checks,
record them in ``<run_dir>/stack.json``, and end exactly those processes again."""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

from ._part import Part
from ._proc import ProcRef, kill_family, proc_start_time, spawn, tail, terminate
from .config import LOCALHOST, KafkaNodePorts, Ports, StackConfig, port_is_free, port_is_open
from .endpoints import Endpoints
from .errors import DevstackError, PartError, StackAlreadyRunning
from .health import check_for
from .kafka import KAFKA_DEV_PASSWORD, KAFKA_DEV_USERNAME, KafkaPart, kafka_ca_file
from .postgres import PostgresPart
from .seaweed import SeaweedPart

log = logging.getLogger("devstack")

PART_TYPES: tuple[type[Part], ...] = (PostgresPart, KafkaPart, SeaweedPart)
PART_NAMES: tuple[str, ...] = tuple(t.name for t in PART_TYPES)  # of the one-broker default
STATE_VERSION = 1

StopMode = Literal["graceful", "immediate"]
RestartMode = Literal["graceful", "immediate", "kill"]

T = TypeVar("T")
R = TypeVar("R")


class _Aborted(Exception):
    """Another part failed; this one gave up."""


@dataclass
class RunningPart:
    name: str
    ref: ProcRef
    port: int
    log_path: Path
    stop_signal: signal.Signals
    stop_grace: float
    cleanup: tuple[Path, ...] = ()
    kill_is_normal: bool = False
    popen: subprocess.Popen[bytes] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.ref.pid,
            "start_time": self.ref.start_time,
            "port": self.port,
            "log": str(self.log_path),
            "stop_signal": self.stop_signal.name,
            "stop_grace": self.stop_grace,
            "cleanup": [str(p) for p in self.cleanup],
            "kill_is_normal": self.kill_is_normal,
        }

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> RunningPart:
        return cls(
            name=name,
            ref=ProcRef(int(d["pid"]), d.get("start_time")),
            port=int(d["port"]),
            log_path=Path(d["log"]),
            stop_signal=signal.Signals[d.get("stop_signal", "SIGTERM")],
            stop_grace=float(d.get("stop_grace", 30.0)),
            cleanup=tuple(Path(p) for p in d.get("cleanup", ())),
            kill_is_normal=bool(d.get("kill_is_normal", False)),
        )


@dataclass(frozen=True)
class PartStatus:
    name: str
    pid: int | None
    port: int | None
    alive: bool
    healthy: bool
    detail: str  # health-check error, or the log tail of a crashed part
    log_path: Path | None


def endpoints_for(
    config: StackConfig, ports: Ports, nodes: Sequence[KafkaNodePorts] | None = None
) -> Endpoints:
    """Where the stack is reached; ``nodes``: every Kafka node's ports (default: the one node
    on ``ports.kafka``)."""
    if nodes is None:
        nodes = (KafkaNodePorts(ports.kafka, ports.kafka_controller),)
    cluster = len(nodes) > 1
    return Endpoints(
        pg_host=LOCALHOST,
        pg_port=ports.pg,
        pg_user=config.pg_user,
        pg_password=config.pg_password,
        kafka_bootstrap=",".join(f"{LOCALHOST}:{n.client}" for n in nodes),
        s3_endpoint=f"http://{LOCALHOST}:{ports.s3}",
        s3_access_key=config.s3_access_key,
        s3_secret_key=config.s3_secret_key,
        s3_region=config.s3_region,
        databases=tuple(config.databases),
        # the SASL_SSL listener is only on the single node
        kafka_sasl_bootstrap="" if cluster else f"{LOCALHOST}:{ports.kafka_sasl}",
        kafka_ca_file="" if cluster else str(kafka_ca_file(config)),
        kafka_username="" if cluster else KAFKA_DEV_USERNAME,
        kafka_password="" if cluster else KAFKA_DEV_PASSWORD,
        kafka_fault_listeners=",".join(f"{LOCALHOST}:{n.fault}" for n in nodes if n.fault),
        kafka_proxied_bootstrap=",".join(
            f"{LOCALHOST}:{n.fault_advertised}" for n in nodes if n.fault
        ),
    )


def make_parts(
    config: StackConfig, ports: Ports, nodes: Sequence[KafkaNodePorts] | None = None
) -> list[Part]:
    """The parts of a stack, in ``config.part_names`` order."""
    if nodes is None:
        nodes = config.resolve_kafka_nodes(ports)
    kafka: list[Part] = [KafkaPart(config, ports, nodes, i) for i in range(len(nodes))]
    return [PostgresPart(config, ports), *kafka, SeaweedPart(config, ports)]


def _parallel(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """``[fn(x) for x in items]`` with one thread per item. Plain threads rather than an
    executor because this also runs from atexit, when concurrent.futures refuses new work;
    an item whose thread cannot be started any more runs on the calling thread."""
    results: dict[int, R] = {}
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            results[i] = fn(items[i])
        except BaseException as e:
            errors.append(e)

    threads: list[threading.Thread] = []
    for i in range(len(items)):
        t = threading.Thread(target=run, args=(i,), name=f"devstack-{i}")
        try:
            t.start()
        except RuntimeError:
            run(i)
        else:
            threads.append(t)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [results[i] for i in range(len(items))]


def read_state(run_dir: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((Path(run_dir) / "stack.json").read_text())
    except FileNotFoundError:
        return None
    return data


def _write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class Stack:
    """PostgreSQL + Kafka (KRaft) + SeaweedFS S3 as local processes.

    >>> stack = Stack(StackConfig(run_dir=Path(".run/test")))
    >>> endpoints = stack.start()
    >>> stack.stop()
    """

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.ports: Ports | None = None
        self.kafka_nodes: tuple[KafkaNodePorts, ...] | None = None
        self.startup_seconds: float | None = None
        self.part_seconds: dict[str, float] = {}
        self._endpoints: Endpoints | None = None
        self._running: dict[str, RunningPart] = {}
        self._lock = threading.RLock()
        self._state = "down"
        self._started_at: str | None = None
        self._detached = False
        self._watchdog: tuple[ProcRef, subprocess.Popen[bytes]] | None = None
        self._parts: dict[str, Part] = {}
        self._owner_pid = os.getpid()

    # --- queries -----------------------------------------------------------------------------

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise DevstackError("stack is not up")
        return self._endpoints

    @property
    def maybe_endpoints(self) -> Endpoints | None:
        return self._endpoints

    @property
    def running(self) -> dict[str, RunningPart]:
        with self._lock:
            return dict(self._running)

    def pids(self) -> dict[str, int]:
        return {name: r.ref.pid for name, r in self.running.items()}

    def crashed(self) -> list[str]:
        """Names of recorded parts whose process is gone."""
        return [name for name, r in self.running.items() if not r.ref.alive()]

    @property
    def part_names(self) -> tuple[str, ...]:
        """``postgres``, ``kafka`` (or ``kafka-0``..), ``s3``."""
        return self.config.part_names

    def status(self, timeout: float = 3.0) -> list[PartStatus]:
        """Per part (and adopted process): alive? health check ok? (checks run concurrently)."""
        running = self.running
        ep = self._endpoints
        names = list(dict.fromkeys([*self.part_names, *running]))

        def one(name: str) -> PartStatus:
            r = running.get(name)
            if r is None:
                return PartStatus(name, None, None, False, False, "not started", None)
            if not r.ref.alive():
                return PartStatus(
                    name, r.ref.pid, r.port, False, False,
                    f"process {r.ref.pid} is gone; last lines of {r.log_path}:\n{tail(r.log_path)}",
                    r.log_path,
                )  # fmt: skip
            if ep is None:
                return PartStatus(name, r.ref.pid, r.port, True, False, "starting", r.log_path)
            check = check_for(name)
            try:
                if check is not None:
                    check(ep, timeout)
            except Exception as e:
                return PartStatus(name, r.ref.pid, r.port, True, False, repr(e), r.log_path)
            return PartStatus(name, r.ref.pid, r.port, True, True, "ok", r.log_path)

        with concurrent.futures.ThreadPoolExecutor(len(names)) as ex:
            return list(ex.map(one, names))

    # --- attach to a stack started by another process ------------------------------------------

    @classmethod
    def attach(cls, run_dir: Path | str) -> Stack:
        """The stack recorded in ``<run_dir>/stack.json`` (empty when there is none), for
        ``status``/``down`` from another process."""
        run_dir = Path(run_dir)
        state = read_state(run_dir)
        if state is None:
            return cls(StackConfig(run_dir=run_dir))
        if state.get("version") != STATE_VERSION:
            raise DevstackError(f"{run_dir}/stack.json has unknown version {state.get('version')}")
        ports = Ports.from_dict(state["ports"]) if state.get("ports") else None
        config = StackConfig.from_dict(run_dir, state.get("config") or {}, ports or "free")
        stack = cls(config)
        stack.ports = ports
        if state.get("kafka_nodes"):
            stack.kafka_nodes = tuple(KafkaNodePorts.from_dict(n) for n in state["kafka_nodes"])
        if state.get("owner_pid"):
            stack._owner_pid = int(state["owner_pid"])
        if state.get("endpoints"):
            stack._endpoints = Endpoints.from_dict(state["endpoints"])
        stack._running = {
            name: RunningPart.from_dict(name, d) for name, d in state.get("parts", {}).items()
        }
        stack._state = state.get("state", "unknown")
        stack._started_at = state.get("started_at")
        stack.startup_seconds = state.get("startup_seconds")
        stack._detached = bool(state.get("detached"))
        return stack

    # --- state file ----------------------------------------------------------------------------

    def _write_state(self) -> None:
        with self._lock:
            state = {
                "version": STATE_VERSION,
                "state": self._state,
                "run_dir": str(self.config.run_dir),
                "owner_pid": self._owner_pid,  # the watchdog watches it (restarts keep it)
                "detached": self._detached,
                "started_at": self._started_at,
                "startup_seconds": self.startup_seconds,
                "ports": self.ports.as_dict() if self.ports else None,
                "kafka_nodes": (
                    [dataclasses.asdict(n) for n in self.kafka_nodes] if self.kafka_nodes else None
                ),
                "config": self.config.to_dict(),
                "parts": {name: r.to_dict() for name, r in self._running.items()},
                "endpoints": self._endpoints.to_dict() if self._endpoints else None,
            }
            _write_atomic(self.config.state_file, json.dumps(state, indent=2) + "\n")

    # --- start ---------------------------------------------------------------------------------

    def start(self, *, detach: bool = False) -> Endpoints:
        """Start all parts concurrently and wait until each passes its health check.

        On failure everything started is stopped again and a :class:`PartError` carrying the
        tail of the failing part's log is raised. Unless ``detach`` is true, the stack is also
        stopped when this interpreter exits (``devstack up`` detaches).
        """
        cfg = self.config
        with self._lock:
            if self._running:
                raise DevstackError("this Stack was already started")
        previous = Stack.attach(cfg.run_dir)
        live = [name for name, r in previous.running.items() if r.ref.alive()]
        if live:
            raise StackAlreadyRunning(
                f"{cfg.run_dir} already runs {', '.join(live)} "
                f"(pids {', '.join(str(previous.running[n].ref.pid) for n in live)}); "
                "run `devstack down` first"
            )
        cfg.logs_dir.mkdir(parents=True, exist_ok=True)
        cfg.state_file.unlink(missing_ok=True)
        cfg.env_file.unlink(missing_ok=True)

        t0 = time.monotonic()
        self.ports = ports = cfg.resolve_ports()
        self.kafka_nodes = nodes = cfg.resolve_kafka_nodes(ports)
        busy = ports.busy()
        checked = set(ports.as_dict().values())
        for i, node in enumerate(nodes):
            for field_name, port in dataclasses.asdict(node).items():
                if port and port not in checked and not port_is_free(port):
                    busy.append((f"kafka_nodes[{i}].{field_name}", port))
        if busy:
            raise DevstackError("ports already in use: " + ", ".join(f"{n}={p}" for n, p in busy))
        endpoints = endpoints_for(cfg, ports, nodes)
        self._owner_pid = os.getpid()
        self._detached = detach
        self._state = "starting"
        self._started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._write_state()

        if not detach:
            self._start_watchdog()
        parts = make_parts(cfg, ports, nodes)
        self._parts = {p.name: p for p in parts}
        abort = threading.Event()
        errors: list[BaseException] = []
        ex = concurrent.futures.ThreadPoolExecutor(len(parts), thread_name_prefix="devstack-start")
        try:
            futures = [ex.submit(self._start_part, p, endpoints, abort) for p in parts]
            for fut in concurrent.futures.as_completed(futures):
                exc = fut.exception()
                if exc is not None:
                    errors.append(exc)
                    abort.set()
        except BaseException as e:  # e.g. KeyboardInterrupt while waiting
            errors.append(e)
        finally:
            if errors:
                abort.set()
            ex.shutdown(wait=True, cancel_futures=True)
        if errors:
            primary = next((e for e in errors if not isinstance(e, _Aborted)), errors[0])
            log.error("devstack start failed: %s", str(primary) or repr(primary))
            with contextlib.suppress(Exception):
                self.stop()
            raise primary

        self.startup_seconds = time.monotonic() - t0
        self._endpoints = endpoints
        self._state = "up"
        self._write_state()
        _write_atomic(cfg.env_file, endpoints.env_file_text())
        if not detach:
            atexit.register(self.stop)
        log.info(
            "devstack up in %.1fs (%s) — run dir %s",
            self.startup_seconds,
            ", ".join(f"{n} {s:.1f}s" for n, s in self.part_seconds.items()),
            cfg.run_dir,
        )
        return endpoints

    def _start_watchdog(self) -> None:
        """A helper process that stops this stack if we die without stopping it."""
        me = ProcRef.of(os.getpid())
        argv = [
            sys.executable,
            "-m",
            "devstack._watchdog",
            str(self.config.run_dir),
            str(me.pid),
            str(me.start_time) if me.start_time is not None else "-",
        ]
        popen = spawn(argv, log_path=self.config.logs_dir / "watchdog.log", cwd=self.config.run_dir)
        self._watchdog = (ProcRef(popen.pid, proc_start_time(popen.pid)), popen)

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            ref, popen = self._watchdog
            terminate(ref, sig=signal.SIGTERM, grace=5.0, popen=popen)
            self._watchdog = None

    def _start_part(self, part: Part, ep: Endpoints, abort: threading.Event) -> None:
        t0 = time.monotonic()
        try:
            part.prepare()
        except PartError:
            raise
        except Exception as e:
            raise PartError(
                part.name, f"preparing failed: {e}", part.log_path, tail(part.log_path)
            ) from e
        if abort.is_set():
            raise _Aborted(part.name)
        spec = part.launch_spec()
        popen = spawn(spec.argv, log_path=part.log_path, cwd=spec.cwd, env=spec.env, user=spec.user)
        running = RunningPart(
            name=part.name,
            ref=ProcRef(popen.pid, proc_start_time(popen.pid)),
            port=part.port,
            log_path=part.log_path,
            stop_signal=part.stop_signal,
            stop_grace=part.stop_grace,
            cleanup=tuple(part.cleanup_paths()),
            kill_is_normal=part.kill_is_normal,
            popen=popen,
        )
        with self._lock:
            self._running[part.name] = running
            self._write_state()
        log.info("%s: started pid %d, waiting for port %d", part.name, popen.pid, part.port)

        deadline = time.monotonic() + self.config.startup_timeout
        self._wait_healthy(part, popen, ep, deadline, abort)
        try:
            part.after_healthy(ep, deadline)
        except Exception as e:
            raise PartError(
                part.name, f"post-start step failed: {e}", part.log_path, tail(part.log_path)
            ) from e
        self.part_seconds[part.name] = time.monotonic() - t0
        log.info("%s: healthy after %.1fs", part.name, self.part_seconds[part.name])

    def _wait_healthy(
        self,
        part: Part,
        popen: subprocess.Popen[bytes],
        ep: Endpoints,
        deadline: float,
        abort: threading.Event,
    ) -> None:
        last: BaseException | None = None
        while True:
            rc = popen.poll()
            if rc is not None:
                raise PartError(
                    part.name,
                    f"process exited with code {rc} during startup",
                    part.log_path,
                    tail(part.log_path),
                )
            if abort.is_set():
                raise _Aborted(part.name)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PartError(
                    part.name,
                    f"not healthy within {self.config.startup_timeout:.0f}s (last error: {last!r})",
                    part.log_path,
                    tail(part.log_path),
                )
            if not port_is_open(part.port, timeout=min(0.5, remaining)):
                last = ConnectionRefusedError(f"port {part.port} not accepting connections")
                time.sleep(0.1)
                continue
            try:
                part.probe(ep, timeout=max(0.5, min(5.0, remaining)))
                return
            except Exception as e:
                last = e
                log.debug("%s: not healthy yet: %r", part.name, e)
                time.sleep(0.2)

    # --- stop ----------------------------------------------------------------------------------

    def stop(self) -> dict[str, str]:
        """End the processes this stack started (concurrently): each part's stop signal, then
        SIGKILL to it and its children after the part's grace period. Removes stack.json and
        stack.env. Returns ``{part: "stopped" | "killed" | "not running"}``."""
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)
        with self._lock:
            running = dict(self._running)
        result: dict[str, str] = {}

        def one(r: RunningPart) -> tuple[str, str]:
            if not r.ref.alive():
                if r.popen is not None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        r.popen.wait(timeout=1)
                outcome = "not running"
            else:
                graceful = terminate(
                    r.ref,
                    sig=r.stop_signal,
                    grace=r.stop_grace,
                    popen=r.popen,
                    kill_log_level=logging.DEBUG if r.kill_is_normal else logging.WARNING,
                )
                outcome = "stopped" if graceful else "killed"
                log.info("%s: pid %d %s", r.name, r.ref.pid, outcome)
            if not r.ref.alive():
                for path in r.cleanup:
                    with contextlib.suppress(OSError):
                        path.unlink(missing_ok=True)
            return r.name, outcome

        if running:
            result = dict(_parallel(one, list(running.values())))
        leftovers = [r.name for r in running.values() if r.ref.alive()]
        if leftovers:
            raise DevstackError(f"could not stop {', '.join(leftovers)}")
        with self._lock:
            self._running.clear()
            self._state = "down"
            self._endpoints = None
        self.config.state_file.unlink(missing_ok=True)
        self.config.env_file.unlink(missing_ok=True)
        self._stop_watchdog()
        return result

    # --- part faults (a running stack) --------------------------------------------------------

    def _recorded(self, part: str) -> RunningPart:
        with self._lock:
            r = self._running.get(part)
        if r is None or part not in self.part_names:
            known = ", ".join(self.part_names)
            raise DevstackError(f"no part {part!r} in this stack (parts: {known})")
        return r

    def _part(self, part: str) -> Part:
        """The Part object (re-created from the recorded config for an attached stack)."""
        if part not in self._parts:
            if self.ports is None:
                raise DevstackError("stack is not up")
            parts = make_parts(self.config, self.ports, self.kafka_nodes)
            self._parts = {p.name: p for p in parts}
        return self._parts[part]

    def _after_stop(self, r: RunningPart) -> None:
        if r.popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                r.popen.wait(timeout=1)
        if not r.ref.alive():
            for path in r.cleanup:
                with contextlib.suppress(OSError):
                    path.unlink(missing_ok=True)
        with self._lock:
            self._write_state()

    def kill(self, part: str) -> None:
        """SIGKILL ``part`` (``postgres``, ``kafka`` or ``kafka-<i>``, ``s3``) and its children at
        once, as a crash would; it stays down (recorded, not alive) until ``start_part``."""
        r = self._recorded(part)
        kill_family(r.ref, r.popen)
        log.info("%s: pid %d killed (SIGKILL)", part, r.ref.pid)
        self._after_stop(r)

    def stop_part(
        self, part: str, *, mode: StopMode = "graceful", timeout: float | None = None
    ) -> str:
        """Stop one part, leaving the rest running: ``graceful`` sends its stop signal
        (postgres: fast shutdown; Kafka: controlled shutdown; s3: SIGTERM), ``immediate`` its
        crash signal (postgres: SIGQUIT, as ``pg_ctl stop -m immediate``; the others: SIGKILL);
        SIGKILL after ``timeout`` (default: the part's grace). Returns ``"stopped"``,
        ``"killed"`` or ``"not running"``."""
        r = self._recorded(part)
        if not r.ref.alive():
            self._after_stop(r)
            return "not running"
        p = self._part(part)
        sig = r.stop_signal if mode == "graceful" else p.immediate_signal
        grace = timeout if timeout is not None else (r.stop_grace if mode == "graceful" else 10.0)
        graceful = terminate(
            r.ref,
            sig=sig,
            grace=grace,
            popen=r.popen,
            kill_log_level=logging.DEBUG if r.kill_is_normal else logging.WARNING,
        )
        outcome = "stopped" if graceful else "killed"
        log.info("%s: pid %d %s (%s, %s)", part, r.ref.pid, outcome, mode, sig.name)
        self._after_stop(r)
        return outcome

    def start_part(self, part: str) -> float:
        """Start a stopped or killed part again on the same ports and data (no initdb, no
        storage format, the Kafka TLS files kept) and wait until it is healthy; the new pid goes
        into stack.json. Returns the seconds it took."""
        r = self._recorded(part)
        if r.ref.alive():
            raise DevstackError(f"{part} is still running (pid {r.ref.pid}); stop it first")
        if self._endpoints is None:
            raise DevstackError("stack is not up")
        p = self._part(part)
        if isinstance(p, KafkaPart):
            p.restarting = True
        t0 = time.monotonic()
        self._start_part(p, self._endpoints, threading.Event())
        return time.monotonic() - t0

    def restart(self, part: str, *, mode: RestartMode = "graceful") -> float:
        """Stop ``part`` (``graceful``/``immediate`` as ``stop_part``, or ``kill``: SIGKILL),
        start it again on the same ports and data and wait until it is healthy.
        ``restart("postgres", mode="immediate")`` is ``pg_ctl restart -m immediate``: crash
        recovery on the way up. Returns the seconds from the stop to healthy."""
        t0 = time.monotonic()
        if mode == "kill":
            self.kill(part)
        else:
            self.stop_part(part, mode=mode)
        self.start_part(part)
        return time.monotonic() - t0

    def adopt(
        self,
        name: str,
        popen: subprocess.Popen[bytes],
        *,
        port: int,
        log_path: Path,
        stop_signal: signal.Signals = signal.SIGTERM,
        stop_grace: float = 5.0,
    ) -> None:
        """Record a helper process (e.g. Toxiproxy) with the stack, so that ``stop()`` and
        the watchdog end it too; ``status()`` reports it alive or not (no health check)."""
        if name in self.part_names:
            raise DevstackError(f"{name!r} is a part's name")
        running = RunningPart(
            name=name,
            ref=ProcRef(popen.pid, proc_start_time(popen.pid)),
            port=port,
            log_path=log_path,
            stop_signal=stop_signal,
            stop_grace=stop_grace,
            popen=popen,
        )
        with self._lock:
            self._running[name] = running
            self._write_state()

    def forget(self, name: str) -> None:
        """Drop an adopted process (ended by its owner) from the record."""
        if name in self.part_names:
            raise DevstackError(f"{name!r} is a part's name")
        with self._lock:
            if self._running.pop(name, None) is not None and self._state != "down":
                self._write_state()

    # --- context manager -----------------------------------------------------------------------

    def __enter__(self) -> Endpoints:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextlib.contextmanager
def running_stack(config: StackConfig) -> Iterator[tuple[Stack, Endpoints]]:
    """``with running_stack(cfg) as (stack, endpoints): ...``"""
    stack = Stack(config)
    endpoints = stack.start()
    try:
        yield stack, endpoints
    finally:
        stack.stop()
