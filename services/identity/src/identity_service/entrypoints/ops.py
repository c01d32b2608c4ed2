"""What identity offers the ops tool (entry point `eventkit.operations`): no projections, since
identity consumes no events; its store still records the ops actions that read it."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from eventkit.operations import ProjectionSpec, ServiceOperations


def projections(pool: asyncpg.Pool) -> Sequence[ProjectionSpec]:
    """None."""
    return ()


OPERATIONS = ServiceOperations("identity", projections)
