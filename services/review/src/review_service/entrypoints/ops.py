"""What review offers the ops tool (entry point `eventkit.operations`)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from eventkit.operations import ProjectionSpec, ServiceOperations
from review_service.adapters.evidence import ReviewEvidence
from review_service.adapters.people import People
from review_service.adapters.queue import QueueProjection
from review_service.adapters.submissions import Submissions


def projections(pool: asyncpg.Pool) -> Sequence[ProjectionSpec]:
    """The submissions, the queue, the evidence and the people, all from Kafka (the queue also
    reads review's own decisions, but beside the application service's events)."""
    return (
        ProjectionSpec(Submissions()),
        ProjectionSpec(QueueProjection()),
        ProjectionSpec(ReviewEvidence()),
        ProjectionSpec(People()),
    )


OPERATIONS = ServiceOperations("review", projections)
