"""Typed settings from the environment (pydantic-settings), one prefix per service."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class PlatformSettings(BaseSettings):
    """What every service needs to reach the event platform.

    Subclass per service with its own prefix, e.g. `IDENTITY_PG_DSN`, `IDENTITY_KAFKA_BOOTSTRAP`.
    """

    model_config = SettingsConfigDict(env_prefix="EVENTKIT_", extra="ignore", frozen=True)

    service_name: str = Field(default="service", pattern=r"^[a-z][a-z0-9-]{0,40}$")
    pg_dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:55432/postgres")
    pg_pool_min: int = Field(default=2, ge=1)
    pg_pool_max: int = Field(default=20, ge=1)
    kafka_bootstrap: str = "127.0.0.1:59092"
    topic_partitions: int = Field(default=6, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    relay_batch_size: int = Field(default=500, ge=1, le=10_000)
    consumer_batch_size: int = Field(default=500, ge=1, le=10_000)
    log_level: str = "INFO"
    log_json: bool = True
    # The worker's /healthz and /metrics (eventkit.health); off unless a port is given.
    health_port: int | None = Field(default=None, ge=1, le=65535)
    health_host: str = "0.0.0.0"  # noqa: S104 - inside a pod; local runs set 127.0.0.1
    health_down_after: float = Field(default=60.0, gt=0)
