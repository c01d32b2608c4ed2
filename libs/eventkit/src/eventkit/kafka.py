"""Kafka plumbing: how to connect, producers, topics, and the headers every message carries."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.helpers import create_ssl_context

from eventkit.envelope import EventEnvelope
from eventkit.errors import EventkitError

log = logging.getLogger(__name__)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
SECURITY_PROTOCOLS: tuple[str, ...] = get_args(SecurityProtocol)
SASL_MECHANISMS: tuple[str, ...] = get_args(SaslMechanism)
MASK = "**********"


class KafkaConfigError(EventkitError, ValueError):
    """A Kafka connection setting is missing, contradicts another one, or names a missing file.

    `field` is the `KafkaConnection` field at fault (settings map it to their own name).
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class KafkaUnavailable(EventkitError, KafkaConnectionError):  # type: ignore[misc]
    """No broker could be used: unreachable, TLS refused, or credentials rejected (`cause`).

    Still an aiokafka `KafkaConnectionError`, which callers caught before it existed.
    """

    def __init__(self, connection: KafkaConnection, cause: str) -> None:
        self.message = f"cannot use Kafka at {connection.describe()}: {cause}"
        super().__init__(self.message)
        self.cause = cause

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class KafkaConnection:
    """Where the brokers are and how to reach them: PLAINTEXT (the default), TLS, SASL or both.

    `ca_file` is the CA that signed the brokers' certificates; without it TLS verifies against
    the system trust store. Host names are always verified. The password never appears in
    `repr`, `describe` or errors.
    """

    bootstrap: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    _ssl_context: ssl.SSLContext | None = field(
        default=None, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if self.ca_file is not None and not isinstance(self.ca_file, Path):
            object.__setattr__(self, "ca_file", Path(self.ca_file))
        self._validate()
        if self.uses_tls:
            object.__setattr__(self, "_ssl_context", self._build_ssl_context())

    def _validate(self) -> None:
        if not self.bootstrap or not self.bootstrap.strip():
            raise KafkaConfigError("bootstrap", "give at least one host:port")
        if self.security_protocol not in SECURITY_PROTOCOLS:
            raise KafkaConfigError(
                "security_protocol",
                f"{self.security_protocol!r} is not one of {', '.join(SECURITY_PROTOCOLS)}",
            )
        sasl = {
            "sasl_mechanism": self.sasl_mechanism,
            "username": self.username,
            "password": self.password,
        }
        if self.uses_sasl:
            for name, value in sasl.items():
                if not value:
                    raise KafkaConfigError(name, f"required with {self.security_protocol}")
            if self.sasl_mechanism not in SASL_MECHANISMS:
                raise KafkaConfigError(
                    "sasl_mechanism",
                    f"{self.sasl_mechanism!r} is not one of {', '.join(SASL_MECHANISMS)}",
                )
        else:
            for name, value in sasl.items():
                if value:
                    raise KafkaConfigError(
                        name,
                        f"only used with SASL_PLAINTEXT or SASL_SSL, not {self.security_protocol}"
                        " (set the security protocol, or leave it out)",
                    )
        if self.ca_file is not None:
            if not self.uses_tls:
                raise KafkaConfigError(
                    "ca_file",
                    f"only used with SSL or SASL_SSL, not {self.security_protocol}",
                )
            if not self.ca_file.is_file():
                raise KafkaConfigError("ca_file", f"no CA certificate file at {self.ca_file}")

    def _build_ssl_context(self) -> ssl.SSLContext:
        try:
            context: ssl.SSLContext = create_ssl_context(cafile=self.ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise KafkaConfigError(
                "ca_file", f"{self.ca_file} is not a PEM CA certificate ({exc})"
            ) from exc
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        return context

    @property
    def uses_tls(self) -> bool:
        """True for SSL and SASL_SSL."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        """True for SASL_PLAINTEXT and SASL_SSL."""
        return self.security_protocol in ("SASL_PLAINTEXT", "SASL_SSL")

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin, client)."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": self.security_protocol,
        }
        if self.uses_sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.username
            kwargs["sasl_plain_password"] = self.password
        if self.uses_tls:
            kwargs["ssl_context"] = self._ssl_context
        return kwargs

    def describe(self) -> str:
        """Where and how, for logs and errors: `host:port (SASL_SSL, SCRAM-SHA-512 as user)`."""
        how: list[str] = [self.security_protocol]
        if self.uses_sasl:
            how.append(f"{self.sasl_mechanism} as {self.username}")
        if self.uses_tls:
            how.append(f"CA {self.ca_file}" if self.ca_file else "system CAs")
        return f"{self.bootstrap} ({', '.join(how)})"

    def __repr__(self) -> str:
        return (
            f"KafkaConnection(bootstrap={self.bootstrap!r},"
            f" security_protocol={self.security_protocol!r},"
            f" sasl_mechanism={self.sasl_mechanism!r}, username={self.username!r},"
            f" password={MASK if self.password else None!r}, ca_file={self.ca_file!r})"
        )

    __str__ = __repr__


def kafka_connection(target: KafkaConnection | str) -> KafkaConnection:
    """A connection as given, or a PLAINTEXT one to a bootstrap string (`host:port,...`)."""
    return target if isinstance(target, KafkaConnection) else KafkaConnection(target)


async def connection_problem(target: KafkaConnection | str, *, timeout: float = 5.0) -> str | None:
    """Why no bootstrap server accepts this connection (refused, TLS, credentials), or None
    when one of them connects and authenticates. Each attempt is bounded by `timeout`."""
    from aiokafka.conn import collect_hosts, create_conn

    connection = kafka_connection(target)
    kwargs = connection.client_kwargs()
    kwargs.pop("bootstrap_servers")
    problems: list[str] = []
    for host, port, _ in collect_hosts(connection.bootstrap, randomize=False):
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host,
                    port,
                    client_id="eventkit-diagnosis",
                    request_timeout_ms=int(timeout * 1000),
                    **kwargs,
                ),
                timeout,
            )
        except ssl.SSLCertVerificationError as exc:
            reason = exc.verify_message or str(exc)
            problems.append(f"{host}:{port}: TLS certificate verification failed ({reason})")
        except ssl.SSLError as exc:
            problems.append(f"{host}:{port}: TLS handshake failed ({exc})")
        except TimeoutError:
            problems.append(f"{host}:{port}: no answer within {timeout:g}s")
        except KafkaError as exc:
            if "SASL" in type(exc).__name__ or "Authentication" in type(exc).__name__:
                problems.append(
                    f"{host}:{port}: authentication failed for user {connection.username!r}"
                    f" with {connection.sasl_mechanism} ({type(exc).__name__}: {exc})"
                )
            else:
                problems.append(f"{host}:{port}: {type(exc).__name__}: {exc}")
        except OSError as exc:
            problems.append(f"{host}:{port}: cannot connect ({exc})")
        else:
            conn.close()
            return None
    return "; ".join(problems) or "no bootstrap server given"


async def start_or_explain(
    start: Callable[[], Awaitable[object]],
    target: KafkaConnection | str,
    *,
    timeout: float = 5.0,
) -> None:
    """Start a client (`producer.start`, `client.bootstrap`, ...); when it cannot bootstrap,
    raise `KafkaUnavailable` saying why (aiokafka's own error only says that it could not)."""
    try:
        await start()
    except KafkaConnectionError as exc:
        connection = kafka_connection(target)
        cause = await connection_problem(connection, timeout=timeout)
        raise KafkaUnavailable(connection, cause or str(exc)) from exc


@dataclass(frozen=True)
class TopicSpec:
    """A topic owned by the service that publishes to it; retention is infinite for the audit."""

    name: str
    partitions: int = 6
    replication_factor: int = 1
    configs: dict[str, str] = field(default_factory=lambda: {"retention.ms": "-1"})


class TopicsNotCreated(EventkitError):
    """The brokers refused to create topics (`refusals`: topic -> Kafka's error name), e.g.
    because this client may not create topics (in production the KafkaTopics create them)."""

    def __init__(self, refusals: Mapping[str, str]) -> None:
        listed = ", ".join(f"{topic} ({error})" for topic, error in sorted(refusals.items()))
        super().__init__(f"Kafka refused to create topics: {listed}")
        self.refusals = dict(refusals)


async def ensure_topics(kafka: KafkaConnection | str, topics: Sequence[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet; returns the names created now. Raises
    `TopicsNotCreated` when the brokers refuse one (aiokafka reports those only in the
    response), so that a missing topic is never taken for a created one."""
    connection = kafka_connection(kafka)
    admin = AIOKafkaAdminClient(**connection.client_kwargs())
    await _start_admin(admin, connection)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t.name not in existing]
        if not missing:
            return []
        try:
            response = await admin.create_topics(
                [
                    NewTopic(
                        name=t.name,
                        num_partitions=t.partitions,
                        replication_factor=t.replication_factor,
                        topic_configs=dict(t.configs),
                    )
                    for t in missing
                ]
            )
        except TopicAlreadyExistsError:
            log.info("topic created concurrently by another process")
            return [t.name for t in missing]
        created, refusals = [], {}
        for topic, code, *_ in response.topic_errors:
            if code == 0:
                created.append(topic)
            elif code == TopicAlreadyExistsError.errno:
                log.info("topic created concurrently by another process", extra={"topic": topic})
            else:
                refusals[topic] = for_code(code).__name__
        if refusals:
            raise TopicsNotCreated(refusals)
        return created
    finally:
        await admin.close()


async def topic_partitions(
    kafka: KafkaConnection | str, topics: Sequence[str]
) -> list[TopicPartition]:
    """Every partition of the given topics (a missing topic has none)."""
    connection = kafka_connection(kafka)
    admin = AIOKafkaAdminClient(**connection.client_kwargs())
    await _start_admin(admin, connection)
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return sorted(
        TopicPartition(t["topic"], p["partition"])
        for t in described
        if t["error_code"] == 0
        for p in t["partitions"]
    )


async def _start_admin(admin: AIOKafkaAdminClient, connection: KafkaConnection) -> None:
    try:
        await start_or_explain(admin.start, connection)
    except BaseException:
        await admin.close()
        raise


def idempotent_producer(kafka: KafkaConnection | str, client_id: str) -> AIOKafkaProducer:
    """A producer that never reorders or duplicates within a partition while it lives."""
    return AIOKafkaProducer(
        **kafka_connection(kafka).client_kwargs(),
        client_id=client_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        request_timeout_ms=30000,
        max_batch_size=1 << 20,
    )


def message_headers(envelope: EventEnvelope) -> list[tuple[str, bytes]]:
    """Routing and trace headers: consumers can filter without parsing the value."""
    return [
        ("event_type", envelope.event_type.encode()),
        ("event_id", str(envelope.event_id).encode()),
        ("schema_version", str(envelope.schema_version).encode()),
        ("traceparent", traceparent(envelope).encode()),
    ]


def traceparent(envelope: EventEnvelope) -> str:
    """W3C trace context: the trace is the correlation, the span is the event."""
    return f"00-{envelope.correlation_id.hex}-{envelope.event_id.hex[:16]}-01"


def header(headers: Sequence[tuple[str, bytes]] | None, name: str) -> str | None:
    """One header's value as text, if present."""
    for key, value in headers or ():
        if key == name:
            return value.decode()
    return None
