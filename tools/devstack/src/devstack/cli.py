"""``devstack`` command line: up / down / status / install / foreground / env."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from . import browser_packages, demo, proxy_packages, system
from .config import StackConfig
from .endpoints import Endpoints
from .errors import DevstackError
from .install import (
    KUSTOMIZE_VERSION,
    TOXIPROXY_VERSION,
    checked_java,
    ensure_kafka_libs,
    ensure_kustomize,
    ensure_os_user,
    ensure_toxiproxy,
    find_pg_binaries,
    find_weed,
    java_major_version,
    kafka_version,
    weed_version,
)
from .stack import PartStatus, Stack

DEFAULT_RUN_DIR = ".run/dev"


def _print_endpoints(ep: Endpoints, run_dir: Path) -> None:
    print(f"  postgres  {ep.pg_dsn('<db>')}")
    print(f"            databases: {', '.join(ep.databases)}")
    print(f"  kafka     {ep.kafka_bootstrap}")
    if ep.kafka_sasl_bootstrap:
        print(
            f"            SASL_SSL {ep.kafka_sasl_bootstrap} (SCRAM-SHA-512 user"
            f" {ep.kafka_username!r}, CA {ep.kafka_ca_file})"
        )
    if ep.kafka_proxied_bootstrap:
        print(
            f"            FAULT listeners {ep.kafka_fault_listeners}, advertised (proxy ports)"
            f" {ep.kafka_proxied_bootstrap}"
        )
    print(f"  s3        {ep.s3_endpoint}  (access key {ep.s3_access_key!r}, region {ep.s3_region})")
    print(f"  env file  source {run_dir / 'stack.env'}")
    print(f"  logs      {run_dir / 'logs'}/<part>.log")


def _print_status(statuses: Sequence[PartStatus]) -> None:
    for s in statuses:
        state = "healthy" if s.healthy else ("UNHEALTHY" if s.alive else "DEAD")
        pid = s.pid if s.pid is not None else "-"
        port = s.port if s.port is not None else "-"
        print(f"  {s.name:<9} pid {pid!s:<8} port {port!s:<6} {state}")
        if not s.healthy and s.detail:
            for line in s.detail.splitlines():
                print(f"      {line}")


def _config(args: argparse.Namespace) -> StackConfig:
    return StackConfig(
        run_dir=Path(args.run_dir),
        ports="fixed" if getattr(args, "fixed_ports", False) else "free",
        startup_timeout=getattr(args, "timeout", 120.0),
        kafka_brokers=getattr(args, "kafka_brokers", 1),
        kafka_fault_listeners=getattr(args, "kafka_fault_listeners", False),
    )


def cmd_up(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).absolute()
    existing = Stack.attach(run_dir)
    if existing.running:
        statuses = existing.status()
        if all(s.healthy for s in statuses):
            print(f"devstack already up in {run_dir}")
            _print_status(statuses)
            _print_endpoints(existing.endpoints, run_dir)
            return 0
        print(f"devstack in {run_dir} is only partly up; restarting it:")
        _print_status(statuses)
        existing.stop()
    t0 = time.monotonic()
    stack = Stack(_config(args))
    try:
        ep = stack.start(detach=True)
    except DevstackError as e:
        print(f"devstack up failed: {e}", file=sys.stderr)
        return 1
    pids = ", ".join(f"{n} {p}" for n, p in stack.pids().items())
    print(f"devstack up in {time.monotonic() - t0:.1f}s ({pids}) — run dir {run_dir}")
    _print_endpoints(ep, run_dir)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).absolute()
    stack = Stack.attach(run_dir)
    if not stack.running:
        print(f"devstack not running in {run_dir}")
        return 0
    result = stack.stop()
    print(f"devstack down in {run_dir}: " + ", ".join(f"{k} {v}" for k, v in result.items()))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).absolute()
    stack = Stack.attach(run_dir)
    if not stack.running:
        if args.json:
            print(json.dumps({"run_dir": str(run_dir), "running": False}))
        else:
            print(f"devstack not running in {run_dir}")
        return 3
    statuses = stack.status()
    if args.json:
        print(
            json.dumps(
                {
                    "run_dir": str(run_dir),
                    "running": True,
                    "parts": [
                        {
                            "name": s.name,
                            "pid": s.pid,
                            "port": s.port,
                            "alive": s.alive,
                            "healthy": s.healthy,
                            "detail": s.detail,
                            "log": str(s.log_path) if s.log_path else None,
                        }
                        for s in statuses
                    ],
                    "endpoints": stack.maybe_endpoints.to_dict() if stack.maybe_endpoints else None,
                },
                indent=2,
            )
        )
    else:
        print(f"devstack in {run_dir}:")
        _print_status(statuses)
        if stack.maybe_endpoints is not None:
            _print_endpoints(stack.maybe_endpoints, run_dir)
    return 0 if all(s.healthy for s in statuses) else 1


def cmd_env(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).absolute()
    try:
        print(Endpoints.load(run_dir).env_file_text(), end="")
    except (FileNotFoundError, RuntimeError) as e:
        print(str(e), file=sys.stderr)
        return 3
    return 0


def cmd_install(args: argparse.Namespace) -> int:
    cfg = _config(args)
    try:
        pg = find_pg_binaries()
        print(f"postgres  PostgreSQL {pg.major} ({pg.source}): {pg.postgres.parent}")
        if os.geteuid() == 0:
            pw = ensure_os_user(cfg.pg_os_user)
            print(f"          runs as system user {pw.pw_name} (uid {pw.pw_uid}); we are root")
        weed = find_weed()
        print(f"s3        SeaweedFS {weed_version(weed)}: {weed}")
        java = checked_java()
        print(f"java      Java {java_major_version(java)}: {java}")
        t0 = time.monotonic()
        libs, resolved = ensure_kafka_libs(cfg.resolved_cache_dir, cfg.resolved_kafka_pom)
        jars = len(list(libs.glob("*.jar")))
        how = f"resolved with mvn in {time.monotonic() - t0:.1f}s" if resolved else "cached"
        print(f"kafka     Apache Kafka {kafka_version(libs)}, {jars} jars {how}: {libs}")
    except DevstackError as e:
        print(f"devstack install failed: {e}", file=sys.stderr)
        return 1
    # The deploy checks' renderer (tests/deploy); `make run` does not need it, so its absence
    # is reported, and those checks fail without it.
    try:
        t0 = time.monotonic()
        kustomize, built = ensure_kustomize(cfg.resolved_cache_dir)
        how = f"built with go install in {time.monotonic() - t0:.1f}s" if built else "cached"
        print(f"kustomize {KUSTOMIZE_VERSION} {how}: {kustomize}")
    except DevstackError as e:
        print(f"kustomize not installed ({e}); the deploy checks (tests/deploy) fail without it")
    # The fault-injection lane's TCP proxy (tests/faults), the same way.
    try:
        t0 = time.monotonic()
        toxiproxy, built = ensure_toxiproxy(cfg.resolved_cache_dir)
        how = f"built with go install in {time.monotonic() - t0:.1f}s" if built else "cached"
        print(f"toxiproxy {TOXIPROXY_VERSION} {how}: {toxiproxy}")
    except DevstackError as e:
        print(f"toxiproxy not installed ({e}); the fault lane (tests/faults) fails without it")
    # Browser tests' system packages; when they cannot be installed we say so and carry on.
    if browser_packages.ensure_browser_packages(say=lambda line: print(line, flush=True)):
        print(browser_packages.status_line())
    # The reverse-proxy tests' nginx, the same way.
    if proxy_packages.ensure_nginx(say=lambda line: print(line, flush=True)):
        print(proxy_packages.status_line())
    return 0


def cmd_foreground(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir).absolute()
    stop = _stop_signals()
    stack = Stack(_config(args))
    t0 = time.monotonic()
    ep = _start(stack)
    if ep is None:
        return 1
    rc = 0
    try:
        print(f"devstack up in {time.monotonic() - t0:.1f}s — run dir {run_dir}; Ctrl-C stops it")
        _print_endpoints(ep, run_dir)
        sys.stdout.flush()
        while not stop.wait(1.0):
            if _report_crashes(stack):
                rc = 1
                break
    finally:
        print("stopping devstack ...")
        result = stack.stop()
        print("devstack down: " + ", ".join(f"{k} {v}" for k, v in result.items()))
    return rc


def _start(stack: Stack) -> Endpoints | None:
    """Start the stack; None (after saying why) when it could not start."""
    try:
        return stack.start()
    except DevstackError as e:
        print(f"devstack failed to start: {e}", file=sys.stderr)
        return None


def _report_crashes(stack: Stack, when: str = "") -> bool:
    """Print each dead part with its log tail; True when any part died."""
    if not stack.crashed():
        return False
    for s in stack.status():
        if not s.alive:
            print(f"{s.name} crashed{when}:\n{s.detail}", file=sys.stderr)
    return True


class StopFlag:
    """Set by SIGTERM/SIGINT, polled by the main loop.

    A signal handler runs in the main thread between bytecodes, possibly while that thread is
    inside `threading.Event.wait` holding the event's lock: calling `Event.set` there deadlocks.
    A plain attribute is all a handler may touch.
    """

    def __init__(self) -> None:
        self.stopped = False

    def set(self) -> None:
        """Ask the loop to stop."""
        self.stopped = True

    def wait(self, timeout: float) -> bool:
        """Sleep up to `timeout` seconds in short steps; True once stopped."""
        deadline = time.monotonic() + timeout
        while not self.stopped and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        return self.stopped


def _stop_signals() -> StopFlag:
    stop = StopFlag()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def cmd_exec(args: argparse.Namespace) -> int:
    """Start a fresh stack on free ports, run a command against it, stop it; the command's code."""
    command = [c for c in args.cmd if c != "--"]
    if not command:
        print("devstack exec: give a command after --", file=sys.stderr)
        return 2
    run_dir = Path(args.run_dir).absolute()
    leftover = Stack.attach(run_dir)
    if leftover.running:
        print(f"stopping a stack left behind in {run_dir}")
        leftover.stop()
    shutil.rmtree(run_dir, ignore_errors=True)
    stack = Stack(_config(args))
    t0 = time.monotonic()
    endpoints = _start(stack)
    if endpoints is None:
        return 1
    print(f"devstack up in {time.monotonic() - t0:.1f}s for: {' '.join(command)}", flush=True)
    try:
        env = {**os.environ, **endpoints.to_env(), "DEVSTACK_RUN_DIR": str(run_dir)}
        rc = subprocess.call(command, env=env)
        if _report_crashes(stack, " during the run"):
            rc = rc or 1
    finally:
        result = stack.stop()
        print("devstack down: " + ", ".join(f"{k} {v}" for k, v in result.items()), flush=True)
    return rc


def cmd_run(args: argparse.Namespace) -> int:
    """The whole system: the stack on fixed ports plus every service with an entrypoint."""
    run_dir = Path(args.run_dir).absolute()
    stop = _stop_signals()
    stack = Stack(StackConfig(run_dir=run_dir, ports="fixed"))
    t0 = time.monotonic()
    endpoints = _start(stack)
    if endpoints is None:
        return 1
    launched: list[system.Launched] = []
    rc = 0
    try:
        launched = system.launch(Path.cwd(), endpoints, run_dir / "logs")
        print(
            f"stack up in {time.monotonic() - t0:.1f}s — run dir {run_dir}; Ctrl-C stops everything"
        )
        _print_endpoints(endpoints, run_dir)
        if launched:
            print("services:")
            for item in launched:
                where = f"http://127.0.0.1:{item.service.port}" if item.kind == "api" else "worker"
                print(f"  {item.service.name:<18} {item.kind:<6} {where}  (log {item.log_path})")
            for line in system.web_ui_lines(launched):
                print(line)
            if system.wait_ready(launched, ("identity", "application"), timeout=90):
                for line in demo.seed(endpoints, run_dir):
                    print(f"demo data: {line}")
                ports = {i.service.name: i.service.port for i in launched}
                chsi = next(
                    (i.service.port for i in launched if i.service.name == "chsi-sandbox"), 8201
                )
                for line in demo.walkthrough(
                    f"http://127.0.0.1:{ports.get('application', 8102)}",
                    f"http://127.0.0.1:{ports.get('review', 8105)}",
                    f"http://127.0.0.1:{chsi}",
                    f"http://127.0.0.1:{ports.get('sms-sandbox', 8203)}",
                ):
                    print(line)
            else:
                print("demo data: not loaded (identity or application not ready; see their logs)")
        else:
            print("services: none has an entrypoint yet (services/*/src/*/entrypoints/api.py)")
        sys.stdout.flush()
        while not stop.wait(1.0):
            dead = [i for i in launched if i.process.poll() is not None]
            for item in dead:
                print(
                    f"{item.service.name} {item.kind} exited:\n{system.tail(item.log_path)}",
                    file=sys.stderr,
                )
            if _report_crashes(stack) or dead:
                rc = 1
                break
    finally:
        print("stopping ...")
        system.stop_all(launched)
        result = stack.stop()
        print("stopped: " + ", ".join(f"{k} {v}" for k, v in result.items()))
    return rc


def _add_kafka_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--kafka-brokers",
        type=int,
        default=1,
        help="1: one broker `kafka` (default); 3: a KRaft cluster kafka-0..2 (replication 3)",
    )
    p.add_argument(
        "--kafka-fault-listeners",
        action="store_true",
        help="a FAULT listener per broker advertising a port for a TCP proxy (Toxiproxy)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="devstack",
        description="Local PostgreSQL + Kafka (KRaft) + SeaweedFS S3 as processes (no Docker).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name: str, help_: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_)
        p.add_argument(
            "--run-dir",
            default=os.environ.get("DEVSTACK_RUN_DIR", DEFAULT_RUN_DIR),
            help=f"state, data and logs (default: $DEVSTACK_RUN_DIR or {DEFAULT_RUN_DIR})",
        )
        return p

    for name, help_ in (
        ("up", "start in the background (idempotent)"),
        ("foreground", "start, wait for Ctrl-C/SIGTERM, stop"),
    ):
        p = add(name, help_)
        p.add_argument(
            "--fixed-ports",
            action="store_true",
            help="PG 55432, Kafka 59092, S3 58333 (default: free ports)",
        )
        p.add_argument("--timeout", type=float, default=120.0, help="health-check deadline (s)")
        _add_kafka_options(p)
    p = add("exec", "start a fresh stack on free ports, run a command with DEVSTACK_* set, stop it")
    p.add_argument("--timeout", type=float, default=120.0, help="health-check deadline (s)")
    _add_kafka_options(p)
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- command and arguments")
    add("run", "the whole system: stack on fixed ports + every service; Ctrl-C stops it")
    add("down", "stop the stack started by `up`")
    p = add("status", "per part: pid alive, health check, port")
    p.add_argument("--json", action="store_true")
    add("env", "print the export lines of the running stack")
    add(
        "install",
        "check binaries and JDK, fetch the Kafka jars, apt-get chromium + fonts-noto-cjk"
        " and nginx-light (idempotent)",
    )
    return parser


COMMANDS = {
    "up": cmd_up,
    "down": cmd_down,
    "status": cmd_status,
    "env": cmd_env,
    "install": cmd_install,
    "foreground": cmd_foreground,
    "exec": cmd_exec,
    "run": cmd_run,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `devstack status | head`
        return 0


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        logging.getLogger("botocore").setLevel(logging.WARNING)
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
