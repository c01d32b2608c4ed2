"""The Stack: start PostgreSQL, Kafka and SeaweedFS concurrently, wait on their health checks,
record them in ``<run_dir>/stack.json``, and end exactly those processes again."""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
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
from typing import Any, TypeVar

from ._part import Part
from ._proc import ProcRef, proc_start_time, spawn, tail, terminate
from .config import LOCALHOST, Ports, StackConfig, port_is_open
from .endpoints import Endpoints
from .errors import DevstackError, PartError, StackAlreadyRunning
from .health import CHECKS
from .kafka import KAFKA_DEV_PASSWORD, KAFKA_DEV_USERNAME, KafkaPart, kafka_ca_file
from .postgres import PostgresPart
from .seaweed import SeaweedPart

log = logging.getLogger("devstack")

PART_TYPES: tuple[type[Part], ...] = (PostgresPart, KafkaPart, SeaweedPart)
PART_NAMES: tuple[str, ...] = tuple(t.name for t in PART_TYPES)
STATE_VERSION = 1

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


def endpoints_for(config: StackConfig, ports: Ports) -> Endpoints:
    return Endpoints(
        pg_host=LOCALHOST,
        pg_port=ports.pg,
        pg_user=config.pg_user,
        pg_password=config.pg_password,
        kafka_bootstrap=f"{LOCALHOST}:{ports.kafka}",
        s3_endpoint=f"http://{LOCALHOST}:{ports.s3}",
        s3_access_key=config.s3_access_key,
        s3_secret_key=config.s3_secret_key,
        s3_region=config.s3_region,
        databases=tuple(config.databases),
        kafka_sasl_bootstrap=f"{LOCALHOST}:{ports.kafka_sasl}",
        kafka_ca_file=str(kafka_ca_file(config)),
        kafka_username=KAFKA_DEV_USERNAME,
        kafka_password=KAFKA_DEV_PASSWORD,
    )


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
        self.startup_seconds: float | None = None
        self.part_seconds: dict[str, float] = {}
        self._endpoints: Endpoints | None = None
        self._running: dict[str, RunningPart] = {}
        self._lock = threading.RLock()
        self._state = "down"
        self._started_at: str | None = None
        self._detached = False
        self._watchdog: tuple[ProcRef, subprocess.Popen[bytes]] | None = None

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

    def status(self, timeout: float = 3.0) -> list[PartStatus]:
        """Per part: process alive? health check ok? (checks run concurrently)."""
        running = self.running
        ep = self._endpoints

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
            try:
                CHECKS[name](ep, timeout)
            except Exception as e:
                return PartStatus(name, r.ref.pid, r.port, True, False, repr(e), r.log_path)
            return PartStatus(name, r.ref.pid, r.port, True, True, "ok", r.log_path)

        with concurrent.futures.ThreadPoolExecutor(len(PART_NAMES)) as ex:
            return list(ex.map(one, PART_NAMES))

    # --- attach to a stack started by another process ------------------------------------------

    @classmethod
    def attach(cls, run_dir: Path | str) -> Stack:
        """The stack recorded in ``<run_dir>/stack.json`` (empty when there is none), for
        ``status``/``down`` from another process."""
        run_dir = Path(run_dir)
        state = read_state(run_dir)
        stack = cls(StackConfig(run_dir=run_dir))
        if state is None:
            return stack
        if state.get("version") != STATE_VERSION:
            raise DevstackError(f"{run_dir}/stack.json has unknown version {state.get('version')}")
        stack.ports = Ports.from_dict(state["ports"]) if state.get("ports") else None
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
                "owner_pid": os.getpid(),
                "detached": self._detached,
                "started_at": self._started_at,
                "startup_seconds": self.startup_seconds,
                "ports": self.ports.as_dict() if self.ports else None,
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
        busy = ports.busy()
        if busy:
            raise DevstackError("ports already in use: " + ", ".join(f"{n}={p}" for n, p in busy))
        endpoints = endpoints_for(cfg, ports)
        self._detached = detach
        self._state = "starting"
        self._started_at = datetime.now(UTC).isoformat(timespec="seconds")
        self._write_state()

        if not detach:
            self._start_watchdog()
        parts = [t(cfg, ports) for t in PART_TYPES]
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
