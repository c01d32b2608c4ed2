"""What media offers the ops tool (entry point `eventkit.operations`)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from eventkit.operations import ProjectionSpec, ServiceOperations
from media_service.adapters.usage import PhotoUsage


def projections(pool: asyncpg.Pool) -> Sequence[ProjectionSpec]:
    """Which photos the applications use, learnt from the application service's events."""
    return (ProjectionSpec(PhotoUsage()),)


OPERATIONS = ServiceOperations("media", projections)
