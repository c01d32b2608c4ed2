"""What credential-verify offers the ops tool (entry point `eventkit.operations`)."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from credential_verify_service.adapters.candidates import Candidates
from eventkit.operations import ProjectionSpec, ServiceOperations


def projections(pool: asyncpg.Pool) -> Sequence[ProjectionSpec]:
    """The candidates learnt from identity's events."""
    return (ProjectionSpec(Candidates()),)


OPERATIONS = ServiceOperations("credential-verify", projections)
