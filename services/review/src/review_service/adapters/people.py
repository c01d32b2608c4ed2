"""Who is who, for reviewers: candidates and staff as identity published them.

The case view shows the candidate's name, admission ticket and masked ID number next to the
certificate photos (the reviewer compares them), and the audit trail and queue name the
reviewers instead of showing account ids. Both come from identity's events (`review_people`);
no full ID number ever reaches review.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from contracts.identity import (
    CANDIDATE_STREAM,
    STAFF_STREAM,
    CandidateProfileUpdated,
    CandidateRegistered,
    StaffAccountCreated,
)
from contracts.registry import REGISTRY
from eventkit.db import Conn
from eventkit.envelope import EventEnvelope

PEOPLE_SCHEMA = "review_people"

_DDL = """
CREATE TABLE IF NOT EXISTS candidates (
    candidate_id     uuid PRIMARY KEY,
    name             text NOT NULL,
    ticket_number    text NOT NULL,
    gender           text NOT NULL,
    id_number_masked text NOT NULL,
    stream_version   integer NOT NULL
);
CREATE TABLE IF NOT EXISTS staff (
    staff_id     uuid PRIMARY KEY,
    username     text NOT NULL,
    display_name text NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class CandidateCard:
    """考生信息 as a reviewer sees it (masked ID number only)."""

    candidate_id: uuid.UUID
    name: str
    ticket_number: str
    gender: str
    id_number_masked: str

    @property
    def gender_label(self) -> str:
        """男 / 女."""
        return {"male": "男", "female": "女"}.get(self.gender, "")


class People:
    """The `review_people` projection of identity's candidate and staff streams."""

    name = PEOPLE_SCHEMA
    topics = (CANDIDATE_STREAM.topic, STAFF_STREAM.topic)
    ddl = _DDL

    async def apply(self, conn: Conn, envelope: EventEnvelope) -> None:
        """Registrations and name changes of candidates; staff accounts."""
        wanted = (CandidateRegistered, CandidateProfileUpdated, StaffAccountCreated)
        if envelope.event_type not in {t.event_type for t in wanted}:
            return
        event = REGISTRY.decode(envelope)
        if isinstance(event, CandidateRegistered):
            await conn.execute(
                """
                INSERT INTO candidates (candidate_id, name, ticket_number, gender,
                                        id_number_masked, stream_version)
                VALUES ($1, $2, $3, $4, $5, $6)
                ON CONFLICT (candidate_id) DO NOTHING
                """,
                event.candidate_id, event.name, event.admission_ticket_number,
                event.gender.value, event.id_number_masked, envelope.stream_version,
            )  # fmt: skip
        elif isinstance(event, CandidateProfileUpdated) and event.name is not None:
            await conn.execute(
                "UPDATE candidates SET name = $2, stream_version = $3"
                " WHERE candidate_id = $1 AND stream_version < $3",
                event.candidate_id,
                event.name,
                envelope.stream_version,
            )
        elif isinstance(event, StaffAccountCreated):
            await conn.execute(
                """
                INSERT INTO staff (staff_id, username, display_name) VALUES ($1, $2, $3)
                ON CONFLICT (staff_id) DO UPDATE
                    SET username = EXCLUDED.username, display_name = EXCLUDED.display_name
                """,
                event.staff_id,
                event.username,
                event.display_name,
            )


async def candidate_card(conn: Conn, candidate_id: uuid.UUID) -> CandidateCard | None:
    """The candidate's card, or None when identity's event has not arrived."""
    row = await conn.fetchrow(
        f"SELECT candidate_id, name, ticket_number, gender, id_number_masked"
        f" FROM {PEOPLE_SCHEMA}.candidates WHERE candidate_id = $1",
        candidate_id,
    )
    return CandidateCard(**dict(row)) if row else None


async def staff_names(conn: Conn, staff_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Display names of these staff accounts (those known)."""
    wanted = list({*staff_ids})
    if not wanted:
        return {}
    rows = await conn.fetch(
        f"SELECT staff_id, display_name FROM {PEOPLE_SCHEMA}.staff"
        " WHERE staff_id = ANY($1::uuid[])",
        wanted,
    )
    return {r["staff_id"]: r["display_name"] for r in rows}
