"""Where the running stack can be reached, and how that is shared between processes."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

ENV_PREFIX = "DEVSTACK_"


@dataclass(frozen=True)
class Endpoints:
    pg_host: str
    pg_port: int
    pg_user: str
    pg_password: str
    kafka_bootstrap: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    s3_region: str = "us-east-1"
    databases: tuple[str, ...] = ()
    # The broker's second listener: SASL_SSL with SCRAM-SHA-512, the certificate signed by the
    # throwaway CA in kafka_ca_file (empty when the stack was recorded without one).
    kafka_sasl_bootstrap: str = ""
    kafka_ca_file: str = ""
    kafka_username: str = ""
    kafka_password: str = ""
    # With StackConfig(kafka_fault_listeners=True): each broker's FAULT listener (where a TCP
    # proxy forwards to) and the addresses those listeners advertise (where the proxies listen;
    # a client bootstrapping there reaches every broker only through them).
    kafka_fault_listeners: str = ""
    kafka_proxied_bootstrap: str = ""

    def pg_dsn(self, db: str = "postgres") -> str:
        """``postgresql://user:pw@127.0.0.1:port/db`` (asyncpg / libpq / SQLAlchemy style)."""
        user = quote(self.pg_user, safe="")
        pw = quote(self.pg_password, safe="")
        return f"postgresql://{user}:{pw}@{self.pg_host}:{self.pg_port}/{db}"

    @property
    def kafka_brokers(self) -> list[str]:
        """``host:port`` of every broker's PLAINTEXT listener, node 0 first."""
        return [a for a in self.kafka_bootstrap.split(",") if a]

    def s3_client_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``boto3.client("s3", **kwargs)`` (add a path-style Config)."""
        return {
            "endpoint_url": self.s3_endpoint,
            "aws_access_key_id": self.s3_access_key,
            "aws_secret_access_key": self.s3_secret_key,
            "region_name": self.s3_region,
        }

    # --- environment -------------------------------------------------------------------------

    def to_env(self) -> dict[str, str]:
        return {
            "DEVSTACK_PG_HOST": self.pg_host,
            "DEVSTACK_PG_PORT": str(self.pg_port),
            "DEVSTACK_PG_USER": self.pg_user,
            "DEVSTACK_PG_PASSWORD": self.pg_password,
            "DEVSTACK_PG_DATABASES": ",".join(self.databases),
            "DEVSTACK_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "DEVSTACK_S3_ENDPOINT": self.s3_endpoint,
            "DEVSTACK_S3_ACCESS_KEY": self.s3_access_key,
            "DEVSTACK_S3_SECRET_KEY": self.s3_secret_key,
            "DEVSTACK_S3_REGION": self.s3_region,
            "DEVSTACK_KAFKA_SASL_BOOTSTRAP": self.kafka_sasl_bootstrap,
            "DEVSTACK_KAFKA_CA_FILE": self.kafka_ca_file,
            "DEVSTACK_KAFKA_USERNAME": self.kafka_username,
            "DEVSTACK_KAFKA_PASSWORD": self.kafka_password,
            "DEVSTACK_KAFKA_FAULT_LISTENERS": self.kafka_fault_listeners,
            "DEVSTACK_KAFKA_PROXIED_BOOTSTRAP": self.kafka_proxied_bootstrap,
            # The local stack is a development machine: its services, tests, benchmarks and
            # ops commands may run on the public development keys (eventkit.settings).
            "EVENTKIT_DEV_MODE": "true",
        }

    def env_file_text(self) -> str:
        """Shell ``export`` lines; ``source <run_dir>/stack.env`` to use them."""
        lines = ["# written by devstack; source this file to reach the local stack"]
        lines += [f"export {k}={shlex.quote(v)}" for k, v in self.to_env().items()]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Endpoints:
        """Read the ``DEVSTACK_*`` variables (as written to ``stack.env``)."""
        env = os.environ if environ is None else environ
        required = [
            "DEVSTACK_PG_HOST",
            "DEVSTACK_PG_PORT",
            "DEVSTACK_PG_USER",
            "DEVSTACK_PG_PASSWORD",
            "DEVSTACK_KAFKA_BOOTSTRAP",
            "DEVSTACK_S3_ENDPOINT",
            "DEVSTACK_S3_ACCESS_KEY",
            "DEVSTACK_S3_SECRET_KEY",
        ]
        missing = [k for k in required if not env.get(k)]
        if missing:
            raise KeyError(f"devstack environment incomplete, missing: {', '.join(missing)}")
        dbs = env.get("DEVSTACK_PG_DATABASES", "")
        return cls(
            pg_host=env["DEVSTACK_PG_HOST"],
            pg_port=int(env["DEVSTACK_PG_PORT"]),
            pg_user=env["DEVSTACK_PG_USER"],
            pg_password=env["DEVSTACK_PG_PASSWORD"],
            kafka_bootstrap=env["DEVSTACK_KAFKA_BOOTSTRAP"],
            s3_endpoint=env["DEVSTACK_S3_ENDPOINT"],
            s3_access_key=env["DEVSTACK_S3_ACCESS_KEY"],
            s3_secret_key=env["DEVSTACK_S3_SECRET_KEY"],
            s3_region=env.get("DEVSTACK_S3_REGION") or "us-east-1",
            databases=tuple(d for d in dbs.split(",") if d),
            kafka_sasl_bootstrap=env.get("DEVSTACK_KAFKA_SASL_BOOTSTRAP", ""),
            kafka_ca_file=env.get("DEVSTACK_KAFKA_CA_FILE", ""),
            kafka_username=env.get("DEVSTACK_KAFKA_USERNAME", ""),
            kafka_password=env.get("DEVSTACK_KAFKA_PASSWORD", ""),
            kafka_fault_listeners=env.get("DEVSTACK_KAFKA_FAULT_LISTENERS", ""),
            kafka_proxied_bootstrap=env.get("DEVSTACK_KAFKA_PROXIED_BOOTSTRAP", ""),
        )

    # --- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["databases"] = list(self.databases)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Endpoints:
        d = dict(data)
        d["pg_port"] = int(d["pg_port"])
        d["databases"] = tuple(d.get("databases", ()))
        return cls(**d)

    @classmethod
    def load(cls, run_dir: Path | str) -> Endpoints:
        """Endpoints of the stack recorded in ``<run_dir>/stack.json``."""
        path = Path(run_dir) / "stack.json"
        try:
            state = json.loads(path.read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"no devstack running in {run_dir} ({path} missing)") from None
        if not state.get("endpoints"):
            raise RuntimeError(f"devstack in {run_dir} is not up yet (state={state.get('state')})")
        return cls.from_dict(state["endpoints"])
