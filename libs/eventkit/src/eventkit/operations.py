"""What a service offers its operators, and the record of what operators did.

A service declares its projections once, in an object published under the entry point group
`eventkit.operations` (its pyproject: `[project.entry-points."eventkit.operations"]`). The ops
tool discovers them at run time, so it can rebuild a projection or retry a dead letter without
importing any service by name, and a deployment image that holds one service offers that one.

Every ops action is itself an event (`OpsActionRecorded`) in the store of each service whose
data it read or changed, on a private stream (`ops.action`, never relayed to Kafka): who did
what, with which arguments, when, and how it ended.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal

import asyncpg
from pydantic import Field

from eventkit.envelope import Actor, DomainEvent, EventEnvelope, Metadata, NewEvent
from eventkit.projection import Projection
from eventkit.store import ENVELOPE_COLUMNS, EventStore, envelope_from_row

ENTRY_POINT_GROUP = "eventkit.operations"
OPS_STREAM = "ops.action"


@dataclass(frozen=True)
class ProjectionSpec:
    """One projection of a service, as ops see it.

    `rebuildable` is False for policies run as projections: applying their events again issues
    commands, so they are never replayed into a shadow (their dead letters can still be retried).
    `own_stream_types` is set when every topic the projection reads carries this service's own
    streams; only then can it be rebuilt from the service's store instead of from Kafka.
    """

    projection: Projection
    rebuildable: bool = True
    own_stream_types: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The projection's schema name."""
        return self.projection.name

    @property
    def consumer(self) -> str:
        """The consumer name its live runner uses (dead letters are filed under it)."""
        return f"projection.{self.projection.name}"


ProjectionFactory = Callable[[asyncpg.Pool], Sequence[ProjectionSpec]]


class _Unconnected:
    """Stands in for a pool when projections are only described: building them does no I/O."""


@dataclass(frozen=True)
class ServiceOperations:
    """A service's offer to ops: its name and its projections built on a pool (no I/O)."""

    service: str
    projections: ProjectionFactory

    def described(self) -> Sequence[ProjectionSpec]:
        """The projections built on no database, to list them, their topics and consumer groups
        (ops' listing, the deployment's Kafka ACLs); applying an event needs a real pool."""
        return self.projections(_Unconnected())  # type: ignore[arg-type]


def service_key(name: str) -> str:
    """One spelling for service names: `credential-verify` and `credential_verify` are one."""
    return name.strip().lower().replace("-", "_")


def discover() -> dict[str, ServiceOperations]:
    """Every installed service's operations, by service key."""
    found: dict[str, ServiceOperations] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        offer = entry.load()
        if not isinstance(offer, ServiceOperations):
            raise TypeError(f"entry point {entry.name} is not a ServiceOperations: {offer!r}")
        found[service_key(offer.service)] = offer
    return found


Outcome = Literal["ok", "failed", "refused"]


class OpsActionRecorded(DomainEvent):
    """An operator ran an ops command that read or changed this service's data."""

    event_type: ClassVar[str] = "OpsActionRecorded"

    command: str = Field(min_length=1, max_length=100)
    arguments: dict[str, Any]
    outcome: Outcome
    detail: dict[str, Any]
    started_at: datetime
    finished_at: datetime
    host: str = Field(max_length=200)


async def record_action(
    pool: asyncpg.Pool,
    *,
    operator: str,
    command: str,
    arguments: Mapping[str, Any],
    outcome: Outcome,
    detail: Mapping[str, Any],
    started_at: datetime,
    host: str,
    correlation_id: uuid.UUID,
) -> EventEnvelope:
    """Append the record of one ops action to this service's store (its own new stream)."""
    event = OpsActionRecorded(
        command=command,
        arguments=dict(arguments),
        outcome=outcome,
        detail=dict(detail),
        started_at=started_at,
        finished_at=datetime.now(UTC),
        host=host,
    )
    [envelope] = await EventStore(pool).append(
        OPS_STREAM,
        str(uuid.uuid4()),
        0,
        [NewEvent.of(event)],
        Metadata(actor=Actor(kind="ops", id=operator), correlation_id=correlation_id),
    )
    return envelope


async def recorded_actions(
    pool: asyncpg.Pool, *, since: datetime | None = None, limit: int = 200
) -> list[EventEnvelope]:
    """The ops actions recorded in this service's store, newest first."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {ENVELOPE_COLUMNS} FROM eventkit.events"
            " WHERE stream_type = $1 AND ($2::timestamptz IS NULL OR occurred_at >= $2)"
            " ORDER BY occurred_at DESC, seq DESC LIMIT $3",
            OPS_STREAM,
            since,
            limit,
        )
    return [envelope_from_row(r) for r in rows]
