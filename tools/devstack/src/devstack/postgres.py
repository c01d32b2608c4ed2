"""PostgreSQL: own cluster under ``<run_dir>/pg``, TCP on 127.0.0.1 only, password auth over TCP.

PostgreSQL refuses to run as root, so when we are root the cluster belongs to an unprivileged
system user (``StackConfig.pg_os_user``, created with useradd when missing) and initdb/postgres
run as that user (``subprocess`` ``user=``/``group=``: no wrapper process, the pid we record is
the postmaster's).
"""

from __future__ import annotations

import logging
import os
import pwd
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from ._part import LaunchSpec, Part, socket_dir
from ._proc import tail
from .config import LOCALHOST, Ports, StackConfig
from .endpoints import Endpoints
from .errors import PartError
from .health import check_postgres, ensure_databases
from .install import PgBinaries, ensure_os_user, find_pg_binaries

log = logging.getLogger("devstack")

CONF_NAME = "devstack.conf"
INCLUDE_LINE = f"include_if_exists = '{CONF_NAME}'"

# Settings for tests: durable (fsync, synchronous_commit on) and enough connections for a
# suite that runs five services' pools at once.
DEFAULT_SETTINGS: dict[str, str] = {
    "max_connections": "300",
    "shared_buffers": "128MB",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "timezone": "UTC",
    "log_timezone": "UTC",
    "logging_collector": "off",
    "log_destination": "stderr",
    "log_line_prefix": "%m [%p] %q%u@%d ",
}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render_postgres_conf(
    port: int, socket_directory: Path, extra: Mapping[str, str] | None = None
) -> str:
    """The ``devstack.conf`` included at the end of postgresql.conf (rewritten every start)."""
    settings = {
        "listen_addresses": LOCALHOST,
        "port": str(port),
        "unix_socket_directories": str(socket_directory),
        **DEFAULT_SETTINGS,
        **(extra or {}),
    }
    lines = ["# written by devstack at every start; overrides postgresql.conf"]
    lines += [f"{k} = {_quote(v)}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def ensure_traversable(path: Path, uid: int, gid: int) -> list[Path]:
    """Give ``uid`` search (x) permission on every ancestor of ``path`` that lacks it, e.g.
    pytest's ``/tmp/pytest-of-root`` (0700). Only the x bit is added (no listing)."""
    changed: list[Path] = []
    for d in reversed(path.parents):
        st = d.stat()
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            os.chmod(d, stat.S_IMODE(st.st_mode) | bit)
            changed.append(d)
    if changed:
        log.warning(
            "postgres runs as uid %d: added search permission to %s",
            uid,
            ", ".join(map(str, changed)),
        )
    return changed


class PostgresPart(Part):
    name = "postgres"
    stop_signal = signal.SIGINT  # "fast" shutdown: roll back open transactions, checkpoint, exit
    immediate_signal = signal.SIGQUIT  # "immediate" (pg_ctl -m immediate): crash recovery next
    stop_grace = 30.0

    def __init__(self, config: StackConfig, ports: Ports) -> None:
        super().__init__(config, ports)
        self.root = config.run_dir / "pg"
        self.data = self.root / "data"
        self.sock_dir = socket_dir(self.root / "sock", f".s.PGSQL.{ports.pg}.lock")
        self.os_user = config.pg_os_user if os.geteuid() == 0 else None
        self._bins: PgBinaries | None = None

    @property
    def port(self) -> int:
        return self.ports.pg

    @property
    def bins(self) -> PgBinaries:
        if self._bins is None:
            self._bins = find_pg_binaries()
        return self._bins

    def _run_as_user(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        if self.os_user is None:
            return subprocess.run(argv, cwd=self.root, capture_output=True, text=True, timeout=300)
        return subprocess.run(
            argv,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=300,
            user=self.os_user,
            group=self.os_user,
            extra_groups=[],
        )

    def _owner(self) -> pwd.struct_passwd | None:
        return ensure_os_user(self.os_user) if self.os_user is not None else None

    def _chown(self, *paths: Path) -> None:
        owner = self._owner()
        if owner is not None:
            for p in paths:
                os.chown(p, owner.pw_uid, owner.pw_gid)

    def prepare(self) -> None:
        bins = self.bins
        log.info(
            "postgres: %s binaries, PostgreSQL %d (%s)", bins.source, bins.major, bins.postgres
        )
        owner = self._owner()
        self.root.mkdir(parents=True, exist_ok=True)
        self.sock_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        os.chmod(self.sock_dir, 0o700)
        self._chown(self.root, self.sock_dir)
        if owner is not None:
            ensure_traversable(self.root, owner.pw_uid, owner.pw_gid)
            ensure_traversable(self.sock_dir, owner.pw_uid, owner.pw_gid)
            if self.data.exists() and self.data.stat().st_uid != owner.pw_uid:
                subprocess.run(
                    ["chown", "-R", f"{owner.pw_uid}:{owner.pw_gid}", str(self.data)], check=True
                )

        version_file = self.data / "PG_VERSION"
        if version_file.exists():
            data_major = int(version_file.read_text().strip().split(".")[0])
            if data_major != bins.major:
                raise PartError(
                    self.name,
                    f"{self.data} was created by PostgreSQL {data_major} but the binaries are "
                    f"PostgreSQL {bins.major} ({bins.source}); delete the run dir to start over",
                    None,
                )
        else:
            self._initdb()

        conf = self.data / CONF_NAME
        conf.write_text(render_postgres_conf(self.ports.pg, self.sock_dir, self.config.pg_settings))
        os.chmod(conf, 0o600)
        self._chown(conf)

    def _initdb(self) -> None:
        t0 = time.monotonic()
        pwfile = self.root / "initdb.pw"
        pwfile.write_text(self.config.pg_password + "\n")
        os.chmod(pwfile, 0o600)
        self._chown(pwfile)
        try:
            proc = self._run_as_user(
                [
                    str(self.bins.initdb),
                    "-D",
                    str(self.data),
                    "-U",
                    self.config.pg_user,
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ]
            )
        finally:
            pwfile.unlink(missing_ok=True)
        with self.log_path.open("a") as f:
            f.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise PartError(
                self.name,
                f"initdb failed (rc={proc.returncode})",
                self.log_path,
                tail(self.log_path),
            )
        with (self.data / "postgresql.conf").open("a") as f:
            f.write(f"\n{INCLUDE_LINE}\n")
        log.info("postgres: initdb %s in %.1fs", self.data, time.monotonic() - t0)

    def launch_spec(self) -> LaunchSpec:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C",
            "LC_ALL": "C",
            "PGDATA": str(self.data),
        }
        return LaunchSpec(
            argv=[str(self.bins.postgres), "-D", str(self.data)],
            cwd=self.root,
            env=env,
            user=self.os_user,
        )

    def probe(self, ep: Endpoints, timeout: float) -> None:
        check_postgres(ep, timeout)

    def after_healthy(self, ep: Endpoints, deadline: float) -> None:
        timeout = max(5.0, deadline - time.monotonic())
        created = ensure_databases(ep, tuple(self.config.databases), timeout)
        if created:
            log.info("postgres: created databases %s", ", ".join(created))
