"""Typed settings from the environment (pydantic-settings), one prefix per service."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit.kafka import KafkaConfigError, KafkaConnection, SaslMechanism, SecurityProtocol

DEV_MODE_VARIABLE = "EVENTKIT_DEV_MODE"


class _DevMode(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EVENTKIT_", extra="ignore", frozen=True)

    dev_mode: bool = False


def dev_mode() -> bool:
    """True when EVENTKIT_DEV_MODE says this is a development machine (`make run`, the tests):
    only then may a service run on the public development keys and secrets."""
    return _DevMode().dev_mode


def variable_of(settings: type[BaseSettings], field: str) -> str:
    """The environment variable a settings field is read from (its first alias, if any)."""
    info = settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices) and isinstance(alias.choices[0], str):
        return alias.choices[0].upper()
    if isinstance(alias, str):
        return alias.upper()
    return f"{settings.model_config.get('env_prefix', '')}{field}".upper()


def refuse_development_values(settings: BaseSettings, development: Mapping[str, str]) -> None:
    """The one rule on development secrets: unless `dev_mode()`, refuse settings whose fields
    (named in `development`) still hold their public development value, naming each variable.

    Call it from a settings class's `model_validator(mode="after")`. The error never shows the
    values (hide_input), only which variables to set.
    """
    if dev_mode():
        return
    errors = []
    for field, public in development.items():
        value = getattr(settings, field)
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value != public:
            continue
        variable = variable_of(type(settings), field)
        errors.append(
            InitErrorDetails(
                type=PydanticCustomError(
                    "development_value",
                    "{variable} is the public development value: set it (from the secret "
                    "store), or set {flag}=true on a development machine",
                    {"variable": variable, "flag": DEV_MODE_VARIABLE},
                ),
                loc=(field,),
                input=None,
            )
        )
    if errors:
        raise ValidationError.from_exception_data(type(settings).__name__, errors, hide_input=True)


class PlatformSettings(BaseSettings):
    """What every service needs to reach the event platform.

    Subclass per service with its own prefix, e.g. `IDENTITY_PG_DSN`, `IDENTITY_KAFKA_BOOTSTRAP`.
    """

    model_config = SettingsConfigDict(
        env_prefix="EVENTKIT_", extra="ignore", frozen=True, hide_input_in_errors=True
    )

    service_name: str = Field(default="service", pattern=r"^[a-z][a-z0-9-]{0,40}$")
    pg_dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:55432/postgres")
    pg_pool_min: int = Field(default=2, ge=1)
    pg_pool_max: int = Field(default=20, ge=1)
    kafka_bootstrap: str = "127.0.0.1:59092"
    # PLAINTEXT unless set; production (Strimzi) uses SASL_SSL + SCRAM-SHA-512 and the cluster CA.
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism | None = None
    kafka_username: str | None = None
    kafka_password: SecretStr | None = None
    kafka_ca_file: Path | None = None
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
    # A relay, consumer or sweep whose loop has not turned for this long is restarted (the
    # supervisor's watchdog; with or without the endpoint). A loop turn takes seconds at most.
    health_stall_after: float = Field(default=300.0, gt=0)

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().upper() or None
        return value

    @field_validator("kafka_username", "kafka_ca_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _kafka_connection_is_consistent(self) -> PlatformSettings:
        try:
            self._build_kafka_connection()
        except KafkaConfigError as exc:
            # Reported on the field at fault (its loc), with the variable to fix in the message.
            name = f"kafka_{exc.field}"
            variable = f"{self.model_config.get('env_prefix', '')}{name}".upper()
            error = PydanticCustomError(
                "kafka_config", "{variable}: {reason}", {"variable": variable, "reason": exc.reason}
            )
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [InitErrorDetails(type=error, loc=(name,), input=getattr(self, name, None))],
                hide_input=True,
            ) from None
        return self

    def _build_kafka_connection(self) -> KafkaConnection:
        password = self.kafka_password.get_secret_value() if self.kafka_password else None
        return KafkaConnection(
            bootstrap=self.kafka_bootstrap,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            username=self.kafka_username,
            password=password or None,
            ca_file=self.kafka_ca_file,
        )

    @cached_property
    def kafka_connection(self) -> KafkaConnection:
        """How every Kafka client of this process connects (checked at load, built once)."""
        return self._build_kafka_connection()
