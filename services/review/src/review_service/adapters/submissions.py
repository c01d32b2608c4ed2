"""The submitted applications review works on, kept from the application service's events.

ApplicationSubmitted and ApplicationResubmitted carry the whole snapshot (event-carried state),
so review never asks the application service anything; ApplicationWithdrawn ends a case. The
envelopes are kept as they came (schema `review_submissions`), in arrival order per application,
and folded together with review's own decision stream into a `ReviewCase`.
"""

from __future__ import annotations

import uuid

from contracts.application import (
    EXEMPTION_STREAM,
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWithdrawn,
)
from eventkit.db import Conn
from eventkit.envelope import EventEnvelope

SUBMISSIONS_SCHEMA = "review_submissions"
KEPT = frozenset(
    {
        ApplicationSubmitted.event_type,
        ApplicationResubmitted.event_type,
        ApplicationWithdrawn.event_type,
    }
)

_DDL = """
CREATE TABLE IF NOT EXISTS inputs (
    application_id uuid NOT NULL,
    stream_version integer NOT NULL,
    event_id       uuid NOT NULL UNIQUE,
    envelope       jsonb NOT NULL,
    PRIMARY KEY (application_id, stream_version)
);
"""


class Submissions:
    """The `review_submissions` projection: the application events of each case, in order."""

    name = SUBMISSIONS_SCHEMA
    topics = (EXEMPTION_STREAM.topic,)
    ddl = _DDL

    async def apply(self, conn: Conn, envelope: EventEnvelope) -> None:
        """Keep submissions, resubmissions and withdrawals; drafts and edits are not review's."""
        if envelope.event_type not in KEPT:
            return
        await conn.execute(
            """
            INSERT INTO inputs (application_id, stream_version, event_id, envelope)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT DO NOTHING
            """,
            uuid.UUID(envelope.stream_id),
            envelope.stream_version,
            envelope.event_id,
            envelope.model_dump(mode="json"),
        )


async def load_inputs(conn: Conn, application_id: uuid.UUID) -> list[EventEnvelope]:
    """The application events of one case, in the application stream's order."""
    rows = await conn.fetch(
        f"SELECT envelope FROM {SUBMISSIONS_SCHEMA}.inputs WHERE application_id = $1"
        " ORDER BY stream_version",
        application_id,
    )
    return [EventEnvelope.model_validate(r["envelope"]) for r in rows]
