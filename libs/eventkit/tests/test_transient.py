"""The transient-failure classifier and the backoff every retry loop uses."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

import asyncpg
import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
    TopicAuthorizationFailedError,
)

from eventkit.backoff import Backoff
from eventkit.kafka import KafkaConnection, KafkaUnavailable
from eventkit.transient import describe, is_transient, sqlstate

pytestmark = pytest.mark.unit


def pg(cls: type[asyncpg.PostgresError], message: str = "x") -> asyncpg.PostgresError:
    return cls(message)


KAFKA = KafkaConnection("127.0.0.1:1")

TRANSIENT = [
    pg(asyncpg.exceptions.SerializationError),  # 40001
    pg(asyncpg.exceptions.DeadlockDetectedError),  # 40P01
    pg(asyncpg.exceptions.LockNotAvailableError),  # 55P03 lock_timeout
    pg(asyncpg.exceptions.QueryCanceledError),  # 57014 statement_timeout
    pg(asyncpg.exceptions.AdminShutdownError),  # 57P01
    pg(asyncpg.exceptions.CannotConnectNowError),  # 57P03 starting up
    pg(asyncpg.exceptions.TooManyConnectionsError),  # 53300
    pg(asyncpg.exceptions.ReadOnlySQLTransactionError),  # 25006 failover
    asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle"),
    asyncpg.exceptions.InterfaceError("connection is closed"),
    asyncpg.exceptions.InterfaceError("pool is closing"),
    # the proxy of a pool connection lost under it (the fault lane's PostgreSQL restarts)
    asyncpg.exceptions.InterfaceError(
        "cannot call Connection.is_closed(): connection has been released back to the pool"
    ),
    asyncpg.exceptions.OutdatedSchemaCacheError("cached statement plan is invalid"),
    ConnectionRefusedError(errno.ECONNREFUSED, "refused"),
    ConnectionResetError(errno.ECONNRESET, "reset"),
    BrokenPipeError(errno.EPIPE, "broken pipe"),
    OSError(errno.EHOSTUNREACH, "no route to host"),
    OSError("Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432, 0, 0)"),
    socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
    TimeoutError(),
    ssl.SSLError("EOF occurred in violation of protocol"),
    KafkaConnectionError("no broker"),
    KafkaTimeoutError(),
    NotLeaderForPartitionError(),
    KafkaUnavailable(KAFKA, "127.0.0.1:1: cannot connect ([Errno 111] refused)"),
]

PERMANENT = [
    ValueError("poison event"),
    AssertionError("version 3 after 1"),
    KeyError("payload"),
    pg(asyncpg.exceptions.UniqueViolationError),  # 23505
    pg(asyncpg.exceptions.UndefinedTableError),  # 42P01
    pg(asyncpg.exceptions.InvalidPasswordError),  # 28P01
    pg(asyncpg.exceptions.InvalidCatalogNameError),  # 3D000 no such database
    pg(asyncpg.exceptions.InvalidTextRepresentationError),  # 22P02
    asyncpg.exceptions.InterfaceError("the server expects 2 arguments, 1 was passed"),
    asyncpg.exceptions.DataError("invalid input for query argument $1: 'x' (an int is required)"),
    FileNotFoundError(errno.ENOENT, "no such file"),
    PermissionError(errno.EACCES, "denied"),
    ssl.SSLCertVerificationError("certificate verify failed"),
    TopicAuthorizationFailedError(),
    KafkaUnavailable(KAFKA, "h:1: authentication failed for user 'x' with SCRAM-SHA-512 (...)"),
    KafkaUnavailable(KAFKA, "h:1: TLS certificate verification failed (self-signed)"),
    asyncio.CancelledError(),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_failures_of_the_moment_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_failures_of_the_input_or_the_configuration_are_permanent(exc: BaseException) -> None:
    assert not is_transient(exc)


def _wrapped(inner: BaseException) -> BaseException:
    def handler() -> None:
        try:
            raise inner
        except Exception as exc:
            raise RuntimeError("could not update the queue") from exc

    with pytest.raises(RuntimeError) as caught:
        handler()
    return caught.value


def test_a_transient_cause_wrapped_by_a_handler_is_still_transient() -> None:
    assert is_transient(_wrapped(asyncpg.exceptions.DeadlockDetectedError("deadlock")))
    assert not is_transient(_wrapped(ValueError("plain bug")))


def test_kafka_refusing_the_credentials_is_permanent_whatever_caused_it() -> None:
    def bootstrap() -> None:
        try:
            raise KafkaConnectionError("Unable to bootstrap from 127.0.0.1:1")
        except KafkaConnectionError as exc:
            raise KafkaUnavailable(KAFKA, "h:1: authentication failed for user 'x'") from exc

    with pytest.raises(KafkaUnavailable) as caught:
        bootstrap()
    assert not is_transient(caught.value)


def test_describe_names_the_type_and_sqlstate() -> None:
    exc = asyncpg.exceptions.SerializationError("could not serialize access")
    assert sqlstate(exc) == "40001"
    assert describe(exc) == "SerializationError(40001)"
    assert describe(ConnectionResetError()) == "ConnectionResetError"
    assert sqlstate(ValueError()) is None


def test_backoff_doubles_up_to_the_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(initial=0.1, cap=5.0)
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [min(5.0, 0.1 * 2**n) for n in range(12)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert max(delays) <= 5.0 and delays[-1] >= 2.5
    assert backoff.attempts == 12
    backoff.reset()
    assert backoff.next_delay() <= 0.1
    assert len({Backoff().next_delay() for _ in range(20)}) > 1  # jittered
