"""What every part (PostgreSQL, Kafka, SeaweedFS) provides to the Stack."""

from __future__ import annotations

import abc
import hashlib
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from .config import Ports, StackConfig
from .endpoints import Endpoints

# sun_path is 108 bytes on Linux; keep a margin
_MAX_SOCKET_PATH = 100


@dataclass(frozen=True)
class LaunchSpec:
    argv: Sequence[str]
    cwd: Path
    env: Mapping[str, str] | None = None
    user: str | None = None  # run as this (unprivileged) system user


def socket_dir(preferred: Path, longest_name: str) -> Path:
    """``preferred`` unless a socket in it would exceed the unix socket path limit; then a
    short per-run-dir directory under the system temp dir."""
    if len(str(preferred / longest_name).encode()) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"devstack-sock-{digest}"


class Part(abc.ABC):
    name: str  # the class's, or (a node of a Kafka cluster) the instance's
    # what Stack.stop_part(mode="immediate") sends: a crash, no clean shutdown
    immediate_signal: ClassVar[signal.Signals] = signal.SIGKILL
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_grace: ClassVar[float] = 30.0
    kill_is_normal: ClassVar[bool] = False  # SIGKILL after stop_grace is expected, not a problem

    def __init__(self, config: StackConfig, ports: Ports) -> None:
        self.config = config
        self.ports = ports

    @property
    def log_path(self) -> Path:
        return self.config.logs_dir / f"{self.name}.log"

    @property
    @abc.abstractmethod
    def port(self) -> int:
        """The client-facing port (its health check runs against it)."""

    @abc.abstractmethod
    def prepare(self) -> None:
        """Create directories, initialise data (initdb / storage format), write config files."""

    @abc.abstractmethod
    def launch_spec(self) -> LaunchSpec:
        """The long-running process."""

    @abc.abstractmethod
    def probe(self, ep: Endpoints, timeout: float) -> None:
        """One health-check attempt; raises when not healthy."""

    def cleanup_paths(self) -> list[Path]:
        """Files outside the run dir to remove once the process is gone (stale sockets)."""
        return []

    def after_healthy(self, ep: Endpoints, deadline: float) -> None:  # noqa: B027
        """Post-start work (create databases, S3 write probe)."""
