"""Certificate checks (CET, PETS, NCRE, NIT) against the exam authority's certificate query.

The query needs the holder's name and ID number. The candidate types the ID number; it is used
only if its keyed fingerprint is the signed-in candidate's, so nobody can probe someone else's
certificates, and it is never stored. Each check is a stream of one event: CertificateVerified,
or CertificateVerificationFailed with a reason the candidate can act on. A check that cannot be
made (the authority is down) records nothing and asks the candidate to try again later.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from contracts.base import fingerprint_id_number
from contracts.credential import (
    CERTIFICATE_STREAM,
    CertificateExam,
    CertificateFailureReason,
    CertificateVerificationFailed,
    CertificateVerified,
)
from credential_verify_service.adapters.candidates import find_candidate
from credential_verify_service.adapters.neea import NeeaClient
from credential_verify_service.domain.certificates import (
    CertificateCheckRequest,
    CertificateConfirmed,
    CertificateHolderMismatch,
    CertificateNotFound,
)
from credential_verify_service.domain.errors import (
    CandidateNotSynced,
    CredentialError,
    IdNumberNotYours,
)
from credential_verify_service.domain.records import normalise_id_number
from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.store import EventStore

BELOW_LEVEL_REASON = "证书级别低于所选证书类型的要求（例如所选为六级，查询结果为四级）"


class CheckNotFound(CredentialError):
    """No such check for this candidate."""

    code = "credential.check_not_found"
    status = 404

    def __init__(self) -> None:
        super().__init__("未找到该证书核验记录", "no such certificate check for this candidate")


@dataclass(frozen=True, slots=True)
class CheckView:
    """A certificate check's result."""

    check_id: uuid.UUID
    exam: str
    certificate_number: str
    outcome: str  # verified | failed
    reason_code: str | None
    details: dict[str, Any]
    checked_at: datetime


def _view(row: asyncpg.Record) -> CheckView:
    return CheckView(
        check_id=row["check_id"],
        exam=row["exam"],
        certificate_number=row["certificate_number"],
        outcome=row["outcome"],
        reason_code=row["reason_code"],
        details=row["details"],
        checked_at=row["checked_at"],
    )


class Certificates:
    """The certificate-check use cases."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        neea: NeeaClient,
        *,
        fingerprint_key: bytes,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> None:
        self._pool = pool
        self._store = store
        self._neea = neea
        self._key = fingerprint_key
        self._new_id = new_id

    async def check(
        self,
        candidate_id: uuid.UUID,
        exam: CertificateExam,
        certificate_number: str,
        id_number: str,
        *,
        correlation_id: uuid.UUID,
    ) -> CheckView:
        """Query the authority and record the outcome as one event."""
        async with self._pool.acquire() as conn:
            who = await find_candidate(conn, candidate_id)
        if who is None:
            raise CandidateNotSynced()
        try:
            given = fingerprint_id_number(normalise_id_number(id_number), self._key)
        except ValueError:
            given = ""
        if given != who.id_number_fingerprint:
            raise IdNumberNotYours()
        request = CertificateCheckRequest.create(exam, certificate_number, who.name, id_number)
        outcome = await self._neea.query_certificate(request)
        check_id = self._new_id()
        event: CertificateVerified | CertificateVerificationFailed
        details: dict[str, Any]
        if isinstance(outcome, CertificateConfirmed):
            band = outcome.level if outcome.exam == "CET" else None
            if exam is CertificateExam.CET6 and band is not None and band < 6:
                event = CertificateVerificationFailed(
                    check_id=check_id,
                    candidate_id=candidate_id,
                    exam=exam,
                    reason_code=CertificateFailureReason.BELOW_REQUIRED_LEVEL,
                    reason=BELOW_LEVEL_REASON,
                )
            else:
                event = CertificateVerified(
                    check_id=check_id,
                    candidate_id=candidate_id,
                    exam=(CertificateExam.CET6 if band == 6 else CertificateExam.CET4)
                    if outcome.exam == "CET"
                    else exam,
                    level=None if outcome.exam == "CET" else outcome.level,
                    subject=outcome.subject,
                    score=outcome.score,
                    exam_session=outcome.exam_session_iso,
                )
            details = {
                "level": outcome.level,
                "subject": outcome.subject,
                "score": outcome.score,
                "exam_session": outcome.exam_session,
                "issued_on": outcome.issued_on.isoformat(),
            }
        else:
            assert isinstance(outcome, CertificateNotFound | CertificateHolderMismatch)
            event = CertificateVerificationFailed(
                check_id=check_id,
                candidate_id=candidate_id,
                exam=exam,
                reason_code=outcome.reason_code,
                reason=outcome.reason,
            )
            details = (
                {"fields": list(outcome.fields)}
                if isinstance(outcome, CertificateHolderMismatch)
                else {}
            )
        if isinstance(event, CertificateVerificationFailed):
            details["reason"] = event.reason
        metadata = Metadata(
            actor=Actor(kind="candidate", id=str(candidate_id)), correlation_id=correlation_id
        )
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                INSERT INTO credential.certificate_checks (check_id, candidate_id, exam,
                    certificate_number, outcome, reason_code, details)
                VALUES ($1, $2, $3, $4, $5, $6, $7)
                RETURNING *
                """,
                check_id,
                candidate_id,
                event.exam.value,
                request.certificate_number,
                "verified" if isinstance(event, CertificateVerified) else "failed",
                None if isinstance(event, CertificateVerified) else event.reason_code.value,
                details,
            )
            await self._store.append(
                CERTIFICATE_STREAM.stream_type,
                str(check_id),
                0,
                [NewEvent.of(event)],
                metadata,
                conn=conn,
            )
        assert row is not None
        return _view(row)

    async def get(self, candidate_id: uuid.UUID, check_id: uuid.UUID) -> CheckView:
        """One of the candidate's checks."""
        row = await self._pool.fetchrow(
            "SELECT * FROM credential.certificate_checks WHERE check_id = $1", check_id
        )
        if row is None or row["candidate_id"] != candidate_id:
            raise CheckNotFound()
        return _view(row)
