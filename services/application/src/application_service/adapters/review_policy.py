"""The policies reacting to review's decisions, run like a projection so each review event is
applied exactly once: the inbox row and the application's new events commit together."""

from __future__ import annotations

from application_service.service_layer.applications import Applications
from contracts.review import DECISION_STREAM, ApplicationApproved, ApplicationReturned
from eventkit.db import Conn
from eventkit.envelope import EventEnvelope

POLICY_SCHEMA = "application_review_policy"


class ReviewPolicy:
    """ApplicationReturned → returned to the candidate; a final ApplicationApproved → decided."""

    name = POLICY_SCHEMA
    topics = (DECISION_STREAM.topic,)
    ddl = "SELECT 1"  # bookkeeping only: the policy writes to the application's event stream

    def __init__(self, applications: Applications) -> None:
        self._applications = applications

    async def apply(self, conn: Conn, envelope: EventEnvelope) -> None:
        """React to one review event; others (claims) are ignored."""
        if envelope.event_type == ApplicationReturned.event_type:
            returned = ApplicationReturned.model_validate(envelope.payload)
            await self._applications.on_returned(
                conn,
                envelope,
                application_id=returned.application_id,
                stage=returned.stage,
                reason=returned.reason,
                submission_number=returned.submission_number,
            )
        elif envelope.event_type == ApplicationApproved.event_type:
            approved = ApplicationApproved.model_validate(envelope.payload)
            if approved.final:  # 初审 passing it upward changes nothing for the candidate yet
                await self._applications.on_decided(
                    conn,
                    envelope,
                    application_id=approved.application_id,
                    decisions=approved.decisions,
                    objection_deadline=approved.objection_deadline,
                )
