"""The whole system on one machine: the stack plus every service that has an entrypoint.

A service takes part once it has `entrypoints/api.py` (an ASGI `app`) and/or
`entrypoints/worker.py` (a `python -m` module: relay and consumers). Each process gets the
platform settings of its own database through `EVENTKIT_*` variables, so services need no
launcher-specific code and the launcher imports no service.

`make run` uses the fixed ports and database names below (`DEFAULT`); a caller that must not
collide with it (the end-to-end test lane) gives its own through `System.with_`:

    system = DEFAULT.with_(ports={"identity": free_port(), ...}, databases={"identity": "e2e_id"})
    launched = launch(root, endpoints, logs, system)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from .endpoints import Endpoints


@dataclass(frozen=True)
class Service:
    """One service of the system: its folder, package, database and API port."""

    name: str
    package: str
    database: str
    port: int

    def entrypoint(self, root: Path, kind: str) -> Path:
        """The path of `entrypoints/<kind>.py` inside the service's package."""
        return root / "services" / self.name / "src" / self.package / "entrypoints" / f"{kind}.py"


SERVICES = (
    Service("identity", "identity_service", "identity", 8101),
    Service("application", "application_service", "application", 8102),
    Service("credential-verify", "credential_verify_service", "credential_verify", 8103),
    Service("media", "media_service", "media", 8104),
    Service("review", "review_service", "review", 8105),
)


@dataclass(frozen=True)
class Sandbox:
    """A local stand-in for an external provider (tools/sandboxes), run as its own process."""

    name: str
    command: str  # `sandboxes <command>`
    port: int

    @property
    def url(self) -> str:
        """Where it listens."""
        return f"http://127.0.0.1:{self.port}"


SANDBOXES = (
    Sandbox("chsi-sandbox", "chsi", 8201),
    Sandbox("neea-sandbox", "neea", 8202),
    Sandbox("sms-sandbox", "sms", 8203),
)
SANDBOX_CLI = Path("tools/sandboxes/src/sandboxes/cli.py")


@dataclass(frozen=True)
class System:
    """Which services and sandboxes make up the system: their ports and databases."""

    services: tuple[Service, ...] = SERVICES
    sandboxes: tuple[Sandbox, ...] = SANDBOXES

    def with_(
        self, *, ports: Mapping[str, int] | None = None, databases: Mapping[str, str] | None = None
    ) -> System:
        """The same system with other ports (by service or sandbox name) and/or database names
        (by service name); names not given keep theirs. Unknown names are an error."""
        ports = dict(ports or {})
        databases = dict(databases or {})
        known = {s.name for s in self.services} | {s.name for s in self.sandboxes}
        unknown = (set(ports) - known) | (set(databases) - {s.name for s in self.services})
        if unknown:
            raise ValueError(f"no such service or sandbox: {', '.join(sorted(unknown))}")
        services = tuple(
            replace(s, port=ports.get(s.name, s.port), database=databases.get(s.name, s.database))
            for s in self.services
        )
        sandboxes = tuple(replace(s, port=ports.get(s.name, s.port)) for s in self.sandboxes)
        return System(services, sandboxes)

    def service(self, name: str) -> Service:
        """The service called `name` (KeyError when there is none)."""
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def url(self, name: str) -> str:
        """The base URL of a service's API or of a sandbox."""
        for sandbox in self.sandboxes:
            if sandbox.name == name:
                return sandbox.url
        return f"http://127.0.0.1:{self.service(name).port}"

    def dsns(self, endpoints: Endpoints) -> dict[str, str]:
        """Each service's database DSN on the stack, by service name."""
        return {s.name: endpoints.pg_dsn(s.database) for s in self.services}


DEFAULT = System()


# Local http only: the web UIs' session cookies cannot be `Secure` on http://127.0.0.1.
LOCAL_WEB_ENV = {
    "review": {"REVIEW_SECURE_COOKIES": "false"},
    "application": {"APPLICATION_SECURE_COOKIES": "false"},
}


def service_env(service: Service, endpoints: Endpoints, system: System = DEFAULT) -> dict[str, str]:
    """The environment of one service's processes: its database, Kafka, S3, and the peers' URLs."""
    env = {
        **endpoints.to_env(),
        "EVENTKIT_SERVICE_NAME": service.name,
        "EVENTKIT_PG_DSN": endpoints.pg_dsn(service.database),
        "EVENTKIT_KAFKA_BOOTSTRAP": endpoints.kafka_bootstrap,
        "EVENTKIT_LOG_JSON": "true",
    }
    for peer in system.services:
        key = peer.name.upper().replace("-", "_")
        env[f"SERVICE_URL_{key}"] = f"http://127.0.0.1:{peer.port}"
    for sandbox in system.sandboxes:
        env[f"PROVIDER_URL_{sandbox.command.upper()}"] = sandbox.url
    env.update(LOCAL_WEB_ENV.get(service.name, {}))
    return env


def wait_ready(launched: list[Launched], names: tuple[str, ...], *, timeout: float) -> bool:
    """Wait until the APIs of `names` answer /readyz (or one of them exits); whether all did."""
    import time
    import urllib.request

    apis = [i for i in launched if i.kind == "api" and i.service.name in names]
    deadline = time.monotonic() + timeout
    waiting = {i.service.name: i for i in apis}
    while waiting and time.monotonic() < deadline:
        for name, item in list(waiting.items()):
            if item.process.poll() is not None:
                return False
            path = "/healthz" if item.service.package == "sandboxes" else "/readyz"
            try:
                url = f"http://127.0.0.1:{item.service.port}{path}"
                with urllib.request.urlopen(url, timeout=2) as answer:
                    if answer.status == 200:
                        del waiting[name]
            except OSError:
                pass
        time.sleep(0.5)
    return not waiting


WEB_UIS = {
    "application": ("candidate portal (考生服务平台)", "/login"),
    "review": ("reviewer UI (审核工作台)", "/login"),
}


def web_ui_lines(launched: list[Launched]) -> list[str]:
    """The web UIs among the launched APIs, with where to start."""
    lines = []
    for item in launched:
        ui = WEB_UIS.get(item.service.name)
        if ui and item.kind == "api":
            title, path = ui
            lines.append(f"web: {title}: http://127.0.0.1:{item.service.port}{path}")
    return lines


@dataclass
class Launched:
    """A started service process and where it logs (and how to start it again)."""

    service: Service
    kind: str
    process: subprocess.Popen[bytes]
    log_path: Path
    command: tuple[str, ...] = ()
    env: Mapping[str, str] | None = field(default=None, repr=False)


def _start(
    service: Service, kind: str, command: list[str], env: Mapping[str, str] | None, log_path: Path
) -> Launched:
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            env=None if env is None else dict(env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Launched(service, kind, process, log_path, tuple(command), env)


def restart(item: Launched) -> Launched:
    """Start a process that was launched (and has exited, or been killed) again: same command,
    environment and log file. The caller waits for it as it needs."""
    if item.process.poll() is None:
        raise RuntimeError(f"{item.service.name} {item.kind} is still running")
    return _start(item.service, item.kind, list(item.command), item.env, item.log_path)


def launch(
    root: Path, endpoints: Endpoints, logs: Path, system: System = DEFAULT
) -> list[Launched]:
    """Start the API and worker of every service that has them; returns what was started."""
    logs.mkdir(parents=True, exist_ok=True)
    started: list[Launched] = []
    if (root / SANDBOX_CLI).exists():
        for sandbox in system.sandboxes:
            command = [sys.executable, "-m", "sandboxes.cli", sandbox.command,
                       "--host", "127.0.0.1", "--port", str(sandbox.port)]  # fmt: skip
            if sandbox.command == "chsi":  # the approve page's links must point back at it
                command += ["--public-url", sandbox.url]
            service = Service(sandbox.name, "sandboxes", "", sandbox.port)
            started.append(_start(service, "api", command, None, logs / f"{sandbox.name}.log"))
    for service in system.services:
        env = {**os.environ, **service_env(service, endpoints, system)}
        commands = {
            "api": [
                sys.executable,
                "-m",
                "uvicorn",
                f"{service.package}.entrypoints.api:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(service.port),
                "--no-access-log",
            ],
            "worker": [sys.executable, "-m", f"{service.package}.entrypoints.worker"],
        }
        for kind, command in commands.items():
            if not service.entrypoint(root, kind).exists():
                continue
            started.append(_start(service, kind, command, env, logs / f"{service.name}-{kind}.log"))
    return started


def stop_all(launched: list[Launched], timeout: float = 10.0) -> None:
    """Stop the services: SIGTERM, then SIGKILL after `timeout`."""
    for item in launched:
        if item.process.poll() is None:
            item.process.terminate()
    for item in launched:
        try:
            item.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            item.process.kill()
            item.process.wait(timeout=timeout)


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
