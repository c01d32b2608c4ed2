"""What the application service offers the ops tool (entry point `eventkit.operations`)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from application_service import bootstrap
from application_service.adapters.evidence import EvidenceProjection
from application_service.adapters.review_policy import ReviewPolicy
from eventkit.operations import ProjectionSpec, ServiceOperations


def projections(pool: asyncpg.Pool) -> Sequence[ProjectionSpec]:
    """The evidence read model, and review's decisions applied as a policy (never rebuilt: its
    events issue commands on the applications)."""
    return (
        ProjectionSpec(EvidenceProjection()),
        ProjectionSpec(ReviewPolicy(bootstrap.wire(pool).applications), rebuildable=False),
    )


OPERATIONS = ServiceOperations("application", projections)
