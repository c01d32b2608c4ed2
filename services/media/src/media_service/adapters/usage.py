"""Which applications use which photos, learned from the application service's events.

Two facts matter to media:
- a **pin**: a submitted (or resubmitted) application cites the photo. The photo is then kept for
  the audit (never deleted by its owner or the sweeper) and the reviewers of that application's
  confirmation point may see it. A pin is never lifted: a withdrawn or returned application was
  still submitted and judged on that photo.
- a **draft use**: a draft's certificate cites the photo. It does not grant reviewers anything,
  but neither the owner nor the unused-photo sweeper may delete the photo while it lasts.
- **releases**: a certificate removed, an application withdrawn. They end the synchronous
  citations (`media.citations`, recorded through the API before the application service records
  a certificate, ADR 0015) of that certificate or application.

It is an eventkit projection (schema `media_usage`), so it is idempotent, resumable, and can be
rebuilt from Kafka and compared with the live one.
"""

from __future__ import annotations

from contracts.application import (
    EXEMPTION_STREAM,
    ApplicationResubmitted,
    ApplicationSubmitted,
    ApplicationWithdrawn,
    CertificateAdded,
    CertificateRemoved,
)
from eventkit.db import Conn
from eventkit.envelope import EventEnvelope

USAGE_SCHEMA = "media_usage"

_DDL = """
CREATE TABLE IF NOT EXISTS pins (
    photo_id              uuid NOT NULL,
    application_id        uuid NOT NULL,
    candidate_id          uuid NOT NULL,
    confirmation_point_id text NOT NULL,
    case_number           text NOT NULL,
    first_submission      integer NOT NULL,
    pinned_at             timestamptz NOT NULL,
    PRIMARY KEY (photo_id, application_id)
);
CREATE TABLE IF NOT EXISTS draft_uses (
    application_id uuid NOT NULL,
    certificate_id uuid NOT NULL,
    photo_id       uuid NOT NULL,
    PRIMARY KEY (application_id, certificate_id, photo_id)
);
CREATE INDEX IF NOT EXISTS draft_uses_photo ON draft_uses (photo_id);
CREATE TABLE IF NOT EXISTS released_certificates (
    application_id uuid NOT NULL,
    certificate_id uuid NOT NULL,
    PRIMARY KEY (application_id, certificate_id)
);
CREATE TABLE IF NOT EXISTS withdrawn_applications (
    application_id uuid PRIMARY KEY
);
"""


def in_use_sql(photo: str) -> str:
    """SQL true while anything cites the photo whose id is the expression `photo`: a submitted
    application (pin), a draft's certificate as the projection knows it (draft use), or a
    synchronous citation not yet released. Such a photo is never deleted nor swept."""
    return f"""(
        EXISTS (SELECT 1 FROM {USAGE_SCHEMA}.pins u WHERE u.photo_id = {photo})
        OR EXISTS (SELECT 1 FROM {USAGE_SCHEMA}.draft_uses d WHERE d.photo_id = {photo})
        OR EXISTS (
            SELECT 1 FROM media.citations c
            WHERE c.photo_id = {photo}
              AND NOT EXISTS (SELECT 1 FROM {USAGE_SCHEMA}.released_certificates r
                              WHERE r.application_id = c.application_id
                                AND r.certificate_id = c.certificate_id)
              AND NOT EXISTS (SELECT 1 FROM {USAGE_SCHEMA}.withdrawn_applications w
                              WHERE w.application_id = c.application_id)
        )
    )"""


class PhotoUsage:
    """The `media_usage` projection: pins and draft uses of photos."""

    name = USAGE_SCHEMA
    topics = (EXEMPTION_STREAM.topic,)
    ddl = _DDL

    async def apply(self, conn: Conn, envelope: EventEnvelope) -> None:
        """Record what one application event says about photos; other events are ignored."""
        event_type = envelope.event_type
        if event_type in (ApplicationSubmitted.event_type, ApplicationResubmitted.event_type):
            model = (
                ApplicationSubmitted
                if event_type == ApplicationSubmitted.event_type
                else ApplicationResubmitted
            )
            snapshot = model.model_validate(envelope.payload)
            await conn.executemany(
                """
                INSERT INTO pins (photo_id, application_id, candidate_id, confirmation_point_id,
                                  case_number, first_submission, pinned_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                ON CONFLICT (photo_id, application_id) DO UPDATE
                    SET confirmation_point_id = EXCLUDED.confirmation_point_id
                """,
                [
                    (
                        photo_id,
                        snapshot.application_id,
                        snapshot.candidate_id,
                        snapshot.confirmation_point_id,
                        snapshot.case_number,
                        snapshot.submission_number,
                        envelope.occurred_at,
                    )
                    for photo_id in dict.fromkeys(snapshot.photo_ids)
                ],
            )
        elif event_type == CertificateAdded.event_type:
            added = CertificateAdded.model_validate(envelope.payload)
            await conn.executemany(
                "INSERT INTO draft_uses (application_id, certificate_id, photo_id)"
                " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                [
                    (added.application_id, added.certificate.certificate_id, photo_id)
                    for photo_id in dict.fromkeys(added.certificate.photo_ids)
                ],
            )
        elif event_type == CertificateRemoved.event_type:
            removed = CertificateRemoved.model_validate(envelope.payload)
            await conn.execute(
                "DELETE FROM draft_uses WHERE application_id = $1 AND certificate_id = $2",
                removed.application_id,
                removed.certificate_id,
            )
            await conn.execute(
                "INSERT INTO released_certificates (application_id, certificate_id)"
                " VALUES ($1, $2) ON CONFLICT DO NOTHING",
                removed.application_id,
                removed.certificate_id,
            )
        elif event_type == ApplicationWithdrawn.event_type:
            withdrawn = ApplicationWithdrawn.model_validate(envelope.payload)
            await conn.execute(
                "DELETE FROM draft_uses WHERE application_id = $1", withdrawn.application_id
            )
            await conn.execute(
                "INSERT INTO withdrawn_applications (application_id) VALUES ($1)"
                " ON CONFLICT DO NOTHING",
                withdrawn.application_id,
            )
