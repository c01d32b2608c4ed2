"""Which failures are transient: worth retrying later, never a reason to give up on an event or
to answer a client 500.

A transient failure says nothing about the event or the request: the database went away or
restarted, the connection dropped, the server refused new connections for a moment, or the
transaction lost a race (serialization failure, deadlock, lock or statement timeout). The same
work done again later succeeds. Everything else (a bug, a constraint, an event the projection
cannot apply) is permanent for that input.

Consumers retry transient failures with backoff and dead-letter only permanent ones; APIs answer
transient ones 503 with `Retry-After`; a worker's start-up waits through them and exits on the
others (a wrong password, a missing database, Kafka credentials or a CA the brokers refuse). One
rule for all of them, here, so they never disagree.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl

import asyncpg
from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from eventkit.kafka import KafkaUnavailable

# SQLSTATE classes and codes that are about the moment, not the input.
_TRANSIENT_CLASSES = frozenset(
    {
        "08",  # connection exception
        "53",  # insufficient resources (too many connections, out of memory, disk full)
        "57",  # operator intervention (admin shutdown, crash shutdown, cannot connect now)
        "58",  # system error (I/O error)
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "55P03",  # lock_not_available (lock_timeout)
        "57014",  # query_canceled (statement_timeout)
        "25006",  # read_only_sql_transaction (a standby promoted late / failover in progress)
        "XX000",  # internal_error: PostgreSQL's own hiccup, retried rather than dead-lettered
    }
)
# Errors asyncpg raises without a SQLSTATE when the connection itself is the problem.
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InternalClientError,  # protocol hiccups, an outdated statement cache
    asyncpg.exceptions.PostgresConnectionError,
    ConnectionError,  # ConnectionRefusedError, ConnectionResetError, BrokenPipeError
    TimeoutError,  # asyncio.TimeoutError is TimeoutError: a pool acquire or connect timed out
    socket.gaierror,  # the server's name does not resolve (yet): DNS during a restart
    ssl.SSLError,  # a TLS session broken off (a certificate refused: see below)
    EOFError,
    KafkaConnectionError,  # no broker reachable (KafkaUnavailable: see below)
    KafkaTimeoutError,
)
# asyncpg's InterfaceError is mostly a caller's mistake (wrong argument count or type, a
# DataError): permanent. Only these messages say the connection or the pool went away.
# A pool's proxy is detached when its connection is lost under it: every call on it then says
# "released back to the pool" (seen in the fault lane on PostgreSQL restarts).
_GONE_MESSAGES = (
    "connection is closed",
    "connection was closed",
    "pool is closing",
    "connection has been released back to the pool",
)
# A network errno: the peer or the route is not there right now. Other OSErrors (a missing
# file, a permission) are about the input or the deployment, not the moment.
_NETWORK_ERRNOS = frozenset(
    getattr(errno, name)
    for name in (
        "ECONNREFUSED", "ECONNRESET", "ECONNABORTED", "EPIPE", "ETIMEDOUT", "EHOSTUNREACH",
        "EHOSTDOWN", "ENETUNREACH", "ENETDOWN", "ENETRESET", "ENOTCONN", "EADDRNOTAVAIL",
        "EAGAIN", "ESHUTDOWN",
    )
    if hasattr(errno, name)
)  # fmt: skip
# Why a Kafka client could not bootstrap that no retry fixes (KafkaUnavailable.cause).
_KAFKA_CONFIG_CAUSES = ("authentication failed", "certificate verification failed")


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a PostgreSQL error, or None."""
    state = getattr(exc, "sqlstate", None)
    return state if isinstance(state, str) else None


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) is a transient failure: retry, do not give up.

    Follows `__cause__`/`__context__` a few levels, so a transient error wrapped by a handler
    (`raise X from exc`) is still seen as one. A verdict of configuration (Kafka refusing the
    credentials or the CA, an untrusted certificate) is final, whatever caused it.
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 5:
        if _is_final_no(current):
            return False
        if _is_transient_itself(current):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def _is_final_no(exc: BaseException) -> bool:
    if isinstance(exc, asyncio.CancelledError | ssl.SSLCertVerificationError):
        return True
    return isinstance(exc, KafkaUnavailable) and any(
        cause in exc.cause for cause in _KAFKA_CONFIG_CAUSES
    )


def _is_transient_itself(exc: BaseException) -> bool:
    state = sqlstate(exc)
    if state is not None:
        return state in _TRANSIENT_CODES or state[:2] in _TRANSIENT_CLASSES
    if isinstance(exc, KafkaUnavailable):
        return True  # not reachable now (a refusal for good is `_is_final_no`)
    if isinstance(exc, asyncpg.exceptions.InterfaceError):
        return any(message in str(exc) for message in _GONE_MESSAGES)
    if isinstance(exc, KafkaError):
        # aiokafka marks the errors a retry can fix (no leader yet, coordinator moving, ...)
        return bool(getattr(exc, "retriable", False)) or isinstance(exc, _TRANSIENT_TYPES)
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    if not isinstance(exc, OSError):
        return False
    # asyncio's create_connection, when every address of a host failed (localhost: ::1 and
    # 127.0.0.1), raises a plain OSError without errno listing each attempt's error
    return exc.errno in _NETWORK_ERRNOS or (
        exc.errno is None and str(exc).startswith("Multiple exceptions:")
    )


def describe(exc: BaseException) -> str:
    """A short cause for logs and metrics: the exception type and SQLSTATE when there is one."""
    state = sqlstate(exc)
    return f"{type(exc).__name__}({state})" if state else type(exc).__name__
