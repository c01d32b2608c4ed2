"""Stack configuration: ports, databases, credentials, locations."""

from __future__ import annotations

import contextlib
import os
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

LOCALHOST = "127.0.0.1"

SERVICE_DATABASES: tuple[str, ...] = (
    "identity",
    "application",
    "credential_verify",
    "review",
    "media",
)
DEFAULT_DATABASES: tuple[str, ...] = (*SERVICE_DATABASES, "eventkit_test")

_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def pick_free_ports(count: int, host: str = LOCALHOST) -> list[int]:
    """``count`` distinct TCP ports that are free on ``host`` right now.

    All sockets are held open until every port is chosen, so the ports are distinct; another
    process may still grab one before we bind it (the stack then fails fast with a clear error).
    """
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_is_open(port: int, host: str = LOCALHOST, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


@dataclass(frozen=True)
class Ports:
    """Every TCP port the stack listens on (all bound to 127.0.0.1)."""

    pg: int
    kafka: int
    kafka_controller: int
    s3: int
    s3_grpc: int
    seaweed_master: int
    seaweed_master_grpc: int
    seaweed_volume: int
    seaweed_volume_grpc: int
    seaweed_filer: int
    seaweed_filer_grpc: int
    kafka_sasl: int  # the broker's SASL_SSL listener (SCRAM-SHA-512 over TLS)

    @classmethod
    def fixed(cls) -> Ports:
        """Stable ports for ``make run`` / ``devstack up --fixed-ports``."""
        return cls(
            pg=55432,
            kafka=59092,
            kafka_controller=59093,
            s3=58333,
            s3_grpc=58334,
            seaweed_master=58335,
            seaweed_master_grpc=58336,
            seaweed_volume=58337,
            seaweed_volume_grpc=58338,
            seaweed_filer=58339,
            seaweed_filer_grpc=58340,
            kafka_sasl=59094,
        )

    @classmethod
    def free(cls) -> Ports:
        """Currently free ports chosen by the kernel (for tests)."""
        return cls(*pick_free_ports(len(fields(cls))))

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, int]) -> Ports:
        # 0 for a port a stack recorded by an older devstack did not have (kafka_sasl)
        return cls(**{f.name: int(data.get(f.name, 0)) for f in fields(cls)})

    def busy(self, host: str = LOCALHOST) -> list[tuple[str, int]]:
        """(name, port) of every port that cannot be bound now."""
        return [(k, v) for k, v in self.as_dict().items() if not port_is_free(v, host)]


@dataclass(frozen=True)
class KafkaNodePorts:
    """The ports of one Kafka node (broker + controller). Node 0 uses ``Ports.kafka`` and
    ``Ports.kafka_controller``; a cluster's other nodes get their own.

    ``fault`` is the node's second PLAINTEXT listener (``FAULT``), which advertises
    ``fault_advertised``: the port a TCP proxy (Toxiproxy) listens on and forwards to ``fault``,
    so that clients bootstrapping there reach every broker through the proxy (0: no such
    listener)."""

    client: int
    controller: int
    fault: int = 0
    fault_advertised: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, int]) -> KafkaNodePorts:
        return cls(**{f.name: int(data.get(f.name, 0)) for f in fields(cls)})


# Fixed ports of node i > 0 and of the FAULT listeners: base + 100 * i
_FIXED_NODE_CLIENT, _FIXED_NODE_CONTROLLER = 59092, 59093
_FIXED_FAULT, _FIXED_FAULT_ADVERTISED = 59095, 59096


def _find_workspace_root(start: Path) -> Path | None:
    for d in (start, *start.parents):
        pyproject = d / "pyproject.toml"
        with contextlib.suppress(OSError):
            if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text():
                return d
    return None


def default_cache_dir() -> Path:
    """``$DEVSTACK_CACHE_DIR``, else ``<workspace root>/.cache``, else ``~/.cache/devstack``."""
    env = os.environ.get("DEVSTACK_CACHE_DIR")
    if env:
        return Path(env)
    root = _find_workspace_root(Path(__file__).resolve().parent) or _find_workspace_root(Path.cwd())
    if root is not None:
        return root / ".cache"
    return Path.home() / ".cache" / "devstack"


def default_kafka_pom() -> Path:
    """``$DEVSTACK_KAFKA_POM``, else ``tools/devstack/kafka/pom.xml`` next to this package."""
    env = os.environ.get("DEVSTACK_KAFKA_POM")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "kafka" / "pom.xml"


PortsSpec = Literal["free", "fixed"] | Ports


@dataclass(frozen=True)
class StackConfig:
    """What to start and where.

    ``run_dir`` holds everything of one stack: data (``pg/``, ``kafka/``, ``s3/``), logs
    (``logs/<part>.log``), ``stack.json`` and ``stack.env``. Re-using a run dir keeps the data.
    """

    run_dir: Path
    databases: Sequence[str] = DEFAULT_DATABASES
    ports: PortsSpec = "free"
    startup_timeout: float = 120.0
    # PostgreSQL
    pg_user: str = "devstack"
    pg_password: str = "devstack"  # noqa: S105 (local throwaway stack)
    pg_os_user: str = "pgrun"  # unprivileged system user postgres runs as when we are root
    pg_settings: Mapping[str, str] = field(default_factory=dict)
    # Kafka
    # Small heap; serial GC and C1-only JIT start ~1s faster on 2 cores (pass your own for
    # throughput benchmarks, e.g. ("-Xms1g", "-Xmx1g", "-XX:+UseG1GC")).
    kafka_jvm_opts: Sequence[str] = (
        "-Xms256m",
        "-Xmx512m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
    )
    kafka_properties: Mapping[str, str] = field(default_factory=dict)
    # 1: one combined broker+controller node named `kafka` (the default). 3 (the fault lane):
    # a KRaft cluster of combined nodes `kafka-0`..`kafka-2`, replication 3, min.insync 2,
    # PLAINTEXT only (no SASL_SSL listener).
    kafka_brokers: int = 1
    # A second PLAINTEXT listener (`FAULT`) per broker advertising a port reserved for a TCP
    # proxy in front of it (Endpoints.kafka_proxied_bootstrap; see devstack.toxiproxy).
    kafka_fault_listeners: bool = False
    # S3 (SeaweedFS)
    s3_access_key: str = "devstack"
    s3_secret_key: str = "devstack-secret"  # noqa: S105 (local throwaway stack)
    s3_region: str = "us-east-1"
    # Where Kafka jars are cached, and the pom that lists them
    cache_dir: Path | None = None
    kafka_pom: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "run_dir", Path(self.run_dir).absolute())
        dbs = tuple(dict.fromkeys(self.databases))
        for db in dbs:
            if not _DB_NAME.match(db):
                raise ValueError(f"invalid database name {db!r} (want [a-z_][a-z0-9_]*)")
        object.__setattr__(self, "databases", dbs)
        object.__setattr__(self, "kafka_jvm_opts", tuple(self.kafka_jvm_opts))
        if self.kafka_brokers < 1:
            raise ValueError(f"kafka_brokers must be at least 1, not {self.kafka_brokers}")
        if isinstance(self.ports, str) and self.ports not in ("free", "fixed"):
            raise ValueError(f"ports must be 'free', 'fixed' or a Ports, not {self.ports!r}")

    def resolve_ports(self) -> Ports:
        if isinstance(self.ports, Ports):
            return self.ports
        return Ports.fixed() if self.ports == "fixed" else Ports.free()

    def to_dict(self) -> dict[str, Any]:
        """What ``from_dict`` needs to re-create the stack's parts (stack.json), ports aside."""
        return {
            "databases": list(self.databases),
            "startup_timeout": self.startup_timeout,
            "pg_user": self.pg_user,
            "pg_password": self.pg_password,
            "pg_os_user": self.pg_os_user,
            "pg_settings": dict(self.pg_settings),
            "kafka_jvm_opts": list(self.kafka_jvm_opts),
            "kafka_properties": dict(self.kafka_properties),
            "kafka_brokers": self.kafka_brokers,
            "kafka_fault_listeners": self.kafka_fault_listeners,
            "s3_access_key": self.s3_access_key,
            "s3_secret_key": self.s3_secret_key,
            "s3_region": self.s3_region,
            "cache_dir": str(self.cache_dir) if self.cache_dir is not None else None,
            "kafka_pom": str(self.kafka_pom) if self.kafka_pom is not None else None,
        }

    @classmethod
    def from_dict(cls, run_dir: Path, data: Mapping[str, Any], ports: PortsSpec) -> StackConfig:
        known = {f.name for f in fields(cls)} - {"run_dir", "ports"}
        kwargs: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        for key in ("cache_dir", "kafka_pom"):
            if kwargs.get(key) is not None:
                kwargs[key] = Path(kwargs[key])
        return cls(run_dir=run_dir, ports=ports, **kwargs)

    @property
    def kafka_cluster(self) -> bool:
        """More than one Kafka node: parts ``kafka-0``.., else one part ``kafka``."""
        return self.kafka_brokers > 1

    @property
    def kafka_part_names(self) -> tuple[str, ...]:
        if not self.kafka_cluster:
            return ("kafka",)
        return tuple(f"kafka-{i}" for i in range(self.kafka_brokers))

    @property
    def part_names(self) -> tuple[str, ...]:
        return ("postgres", *self.kafka_part_names, "s3")

    def resolve_kafka_nodes(self, ports: Ports) -> tuple[KafkaNodePorts, ...]:
        """Every Kafka node's ports: node 0 on ``ports.kafka``/``ports.kafka_controller``, the
        others (and the FAULT listeners) fixed (base + 100 * node) or free, as ``ports`` is."""
        n = self.kafka_brokers
        per_node = 4 if self.kafka_fault_listeners else 2
        fixed = self.ports == "fixed"
        taken = set(ports.as_dict().values())
        need = 0 if fixed else per_node * n - 2
        # chosen after `ports` were released: skip any the kernel hands out again
        free = iter([p for p in pick_free_ports(need + len(taken)) if p not in taken][:need])
        nodes = []
        for i in range(n):
            if i == 0:
                client, controller = ports.kafka, ports.kafka_controller
            elif fixed:
                client, controller = _FIXED_NODE_CLIENT + 100 * i, _FIXED_NODE_CONTROLLER + 100 * i
            else:
                client, controller = next(free), next(free)
            fault = advertised = 0
            if self.kafka_fault_listeners:
                if fixed:
                    fault, advertised = _FIXED_FAULT + 100 * i, _FIXED_FAULT_ADVERTISED + 100 * i
                else:
                    fault, advertised = next(free), next(free)
            nodes.append(KafkaNodePorts(client, controller, fault, advertised))
        return tuple(nodes)

    @property
    def resolved_cache_dir(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()

    @property
    def resolved_kafka_pom(self) -> Path:
        return Path(self.kafka_pom) if self.kafka_pom is not None else default_kafka_pom()

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    @property
    def state_file(self) -> Path:
        return self.run_dir / "stack.json"

    @property
    def env_file(self) -> Path:
        return self.run_dir / "stack.env"
