"""The candidates credential-verify must match records against, learned from identity's events.

Only what matching needs: the roster name and the keyed fingerprint of the ID number (never the
number itself), plus its masked form for display. An eventkit projection (schema
`credential_candidates`): idempotent, resumable, rebuildable.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from contracts.identity import CANDIDATE_STREAM, CandidateProfileUpdated, CandidateRegistered
from eventkit.db import Conn
from eventkit.envelope import EventEnvelope

CANDIDATES_SCHEMA = "credential_candidates"

_DDL = """
CREATE TABLE IF NOT EXISTS candidates (
    candidate_id          uuid PRIMARY KEY,
    name                  text NOT NULL,
    id_number_fingerprint text NOT NULL,
    id_number_masked      text NOT NULL,
    registered_at         timestamptz NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class KnownCandidate:
    """A registered candidate as credential-verify knows them."""

    candidate_id: uuid.UUID
    name: str
    id_number_fingerprint: str
    id_number_masked: str


class Candidates:
    """The `credential_candidates` projection."""

    name = CANDIDATES_SCHEMA
    topics = (CANDIDATE_STREAM.topic,)
    ddl = _DDL

    async def apply(self, conn: Conn, envelope: EventEnvelope) -> None:
        """Record a registration; follow a name change."""
        if envelope.event_type == CandidateRegistered.event_type:
            registered = CandidateRegistered.model_validate(envelope.payload)
            await conn.execute(
                """
                INSERT INTO candidates (candidate_id, name, id_number_fingerprint,
                                        id_number_masked, registered_at)
                VALUES ($1, $2, $3, $4, $5)
                ON CONFLICT (candidate_id) DO UPDATE SET
                    name = EXCLUDED.name,
                    id_number_fingerprint = EXCLUDED.id_number_fingerprint,
                    id_number_masked = EXCLUDED.id_number_masked
                """,
                registered.candidate_id,
                registered.name,
                registered.id_number_fingerprint,
                registered.id_number_masked,
                envelope.occurred_at,
            )
        elif envelope.event_type == CandidateProfileUpdated.event_type:
            updated = CandidateProfileUpdated.model_validate(envelope.payload)
            if updated.name:
                await conn.execute(
                    "UPDATE candidates SET name = $2 WHERE candidate_id = $1",
                    updated.candidate_id,
                    updated.name,
                )


async def find_candidate(conn: Conn, candidate_id: uuid.UUID) -> KnownCandidate | None:
    """A registered candidate by id, or None if identity's event has not arrived (yet)."""
    row = await conn.fetchrow(
        f"SELECT candidate_id, name, id_number_fingerprint, id_number_masked"
        f" FROM {CANDIDATES_SCHEMA}.candidates WHERE candidate_id = $1",
        candidate_id,
    )
    if row is None:
        return None
    return KnownCandidate(
        candidate_id=row["candidate_id"],
        name=row["name"],
        id_number_fingerprint=row["id_number_fingerprint"],
        id_number_masked=row["id_number_masked"],
    )
