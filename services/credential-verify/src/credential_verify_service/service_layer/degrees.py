"""Degree verification through CHSI (学信网): QR authorisations and online verification codes.

A QR authorisation is opened with CHSI, shown as a QR code, and completed when CHSI tells us the
candidate decided: by its signed callback, or by polling when the callback is late or lost. Both
paths end in `_complete`, which locks the authorisation row, so a decision is recorded once
however often and however it arrives. Records are accepted only when the holder is the
candidate: same name, and an ID number whose keyed fingerprint equals the one identity
published (no full ID number is ever stored here).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from contracts.base import fingerprint_id_number
from contracts.credential import (
    DEGREE_STREAM,
    AuthorizationMethod,
    DegreeAuthorizationExpired,
    DegreeAuthorizationRequested,
    DegreesVerified,
    VerifiedDegree,
)
from credential_verify_service.adapters import qr
from credential_verify_service.adapters.candidates import KnownCandidate, find_candidate
from credential_verify_service.adapters.chsi import (
    AuthorizationSnapshot,
    ChsiClient,
    parse_callback,
    verify_callback_signature,
)
from credential_verify_service.domain.authorization import AuthorizationStatus, QrAuthorization
from credential_verify_service.domain.codes import parse_verification_code
from credential_verify_service.domain.errors import (
    AuthorizationNotFound,
    CandidateNotSynced,
    ProviderUnavailable,
    RecordHolderMismatch,
)
from credential_verify_service.domain.records import (
    QualificationRecord,
    normalise_id_number,
    normalise_name,
)
from eventkit.db import Conn
from eventkit.envelope import Actor, DomainEvent, Metadata, NewEvent
from eventkit.store import EventStore

log = logging.getLogger(__name__)

DEGREE_REF_NAMESPACE = uuid.UUID("6f1c8a52-3e0b-4f7e-9d51-8a7c2b0e4d19")
VERIFICATION_VALIDITY = timedelta(days=180)  # CHSI: a verification may be relied on this long
LATE_CALLBACK_GRACE = timedelta(seconds=30)
ABANDON_AFTER = timedelta(days=1)  # an authorisation CHSI cannot tell us about expires anyway
REUSE_QR_WHILE = timedelta(minutes=1)  # an open QR code with this much life left is reused


def degree_ref_of(candidate_id: uuid.UUID, record_id: str) -> uuid.UUID:
    """A stable reference for one CHSI record of one candidate (re-verifying keeps it)."""
    return uuid.uuid5(DEGREE_REF_NAMESPACE, f"{candidate_id}:{record_id}")


@dataclass(frozen=True, slots=True)
class AuthorizationView:
    """An authorisation as the portal shows it."""

    authorization_id: uuid.UUID
    method: str
    status: str
    expires_at: datetime
    decided_at: datetime | None
    accepted_records: int
    refused_records: int
    refused_fields: tuple[str, ...]
    qr_content: str | None = None


@dataclass(frozen=True, slots=True)
class QrCode:
    """A new QR authorisation: what to scan and until when."""

    authorization: AuthorizationView
    png: bytes
    svg: str


@dataclass(frozen=True, slots=True)
class DegreeView:
    """A verified degree (查看已验证学历信息)."""

    degree_ref: uuid.UUID
    holder_name: str
    id_number_masked: str
    degree: dict[str, Any]
    verified_at: datetime
    valid_until: date | None


@dataclass
class Matching:
    """The records of one release, split into the candidate's own and the refused ones."""

    accepted: list[QualificationRecord] = field(default_factory=list)
    refused_fields: set[str] = field(default_factory=set)
    refused: int = 0


def _view(row: asyncpg.Record) -> AuthorizationView:
    return AuthorizationView(
        authorization_id=row["authorization_id"],
        method=row["method"],
        status=row["status"],
        expires_at=row["expires_at"],
        decided_at=row["decided_at"],
        accepted_records=row["accepted_records"],
        refused_records=row["refused_records"],
        refused_fields=tuple(row["refused_fields"]),
        qr_content=row["qr_content"],
    )


def _aggregate(row: asyncpg.Record) -> QrAuthorization:
    return QrAuthorization(
        authorization_id=row["authorization_id"],
        candidate_id=row["candidate_id"],
        ticket=row["ticket"],
        expires_at=row["expires_at"],
        status=AuthorizationStatus(row["status"]),
        decided_at=row["decided_at"],
    )


class Degrees:
    """The degree-verification use cases."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        chsi: ChsiClient,
        *,
        chsi_secret: str,
        callback_url: str,
        fingerprint_key: bytes,
        callback_tolerance: int = 300,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> None:
        self._pool = pool
        self._store = store
        self._chsi = chsi
        self._secret = chsi_secret
        self._callback_url = callback_url
        self._key = fingerprint_key
        self._tolerance = callback_tolerance
        self._now = clock
        self._new_id = new_id

    # -- matching ---------------------------------------------------------------------------

    def _holder_fields(self, record: QualificationRecord, who: KnownCandidate) -> set[str]:
        fields: set[str] = set()
        if not record.name.strip() or normalise_name(record.name) != normalise_name(who.name):
            fields.add("name")
        try:
            print_ = fingerprint_id_number(normalise_id_number(record.id_number), self._key)
        except ValueError:
            print_ = ""
        if print_ != who.id_number_fingerprint:
            fields.add("id_number")
        return fields

    def _match(self, records: Sequence[QualificationRecord], who: KnownCandidate) -> Matching:
        matching = Matching()
        for record in records:
            fields = self._holder_fields(record, who)
            if fields:
                matching.refused += 1
                matching.refused_fields |= fields
            else:
                matching.accepted.append(record)
        return matching

    async def _candidate(self, conn: Conn, candidate_id: uuid.UUID) -> KnownCandidate:
        who = await find_candidate(conn, candidate_id)
        if who is None:
            raise CandidateNotSynced()
        return who

    # -- events -----------------------------------------------------------------------------

    async def _append(
        self, conn: Conn, candidate_id: uuid.UUID, events: Sequence[DomainEvent], metadata: Metadata
    ) -> None:
        """Append to the candidate's degree stream; the caller's transaction serialises it."""
        stream_id = str(candidate_id)
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            f"{DEGREE_STREAM.stream_type}:{stream_id}",
        )
        version = await self._store.version(DEGREE_STREAM.stream_type, stream_id, conn=conn)
        await self._store.append(
            DEGREE_STREAM.stream_type,
            stream_id,
            version,
            [NewEvent.of(e) for e in events],
            metadata,
            conn=conn,
        )

    async def _record_degrees(
        self,
        conn: Conn,
        who: KnownCandidate,
        authorization_id: uuid.UUID,
        records: Sequence[QualificationRecord],
        verified_at: datetime,
        valid_until: date | None,
    ) -> list[VerifiedDegree]:
        degrees = []
        for record in records:
            # The holder was matched by name and fingerprint above; the record's own name and
            # number stand in for the candidate's, which this service never holds in full.
            degree = record.to_verified_degree(
                degree_ref=degree_ref_of(who.candidate_id, record.record_id),
                candidate_name=record.name,
                candidate_id_number=record.id_number,
                verified_at=verified_at,
            )
            degrees.append(degree)
            await conn.execute(
                """
                INSERT INTO credential.degrees (degree_ref, candidate_id, record_id,
                    authorization_id, holder_name, id_number_masked, degree, verified_at,
                    valid_until)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (candidate_id, record_id) DO UPDATE SET
                    authorization_id = EXCLUDED.authorization_id,
                    holder_name = EXCLUDED.holder_name, degree = EXCLUDED.degree,
                    verified_at = EXCLUDED.verified_at, valid_until = EXCLUDED.valid_until
                """,
                degree.degree_ref,
                who.candidate_id,
                record.record_id,
                authorization_id,
                record.name,
                who.id_number_masked,
                degree.model_dump(mode="json"),
                verified_at,
                valid_until,
            )
        return degrees

    # -- QR authorisation -------------------------------------------------------------------

    async def start_qr(self, candidate_id: uuid.UUID, *, correlation_id: uuid.UUID) -> QrCode:
        """获取学信网二维码: open an authorisation with CHSI and return its QR code.

        While the candidate's latest QR code still has a minute to live, the same one is
        returned: pressing the button again does not open authorisation after authorisation.
        """
        async with self._pool.acquire() as conn:
            await self._candidate(conn, candidate_id)
            open_row = await conn.fetchrow(
                "SELECT * FROM credential.authorizations WHERE candidate_id = $1"
                " AND method = 'qr_code' AND status = 'requested' AND expires_at > $2"
                " ORDER BY created_at DESC LIMIT 1",
                candidate_id,
                self._now() + REUSE_QR_WHILE,
            )
        if open_row is not None:
            content = open_row["qr_content"]
            return QrCode(_view(open_row), png=qr.qr_png(content), svg=qr.qr_svg(content))
        authorization_id = self._new_id()
        created = await self._chsi.create_authorization(authorization_id, self._callback_url)
        metadata = Metadata(
            actor=Actor(kind="candidate", id=str(candidate_id)), correlation_id=correlation_id
        )
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                INSERT INTO credential.authorizations (authorization_id, candidate_id, method,
                    ticket, qr_content, expires_at, status)
                VALUES ($1, $2, 'qr_code', $3, $4, $5, 'requested')
                RETURNING *
                """,
                authorization_id,
                candidate_id,
                created.ticket,
                created.qr_content,
                created.expires_at,
            )
            await self._append(
                conn,
                candidate_id,
                [
                    DegreeAuthorizationRequested(
                        candidate_id=candidate_id,
                        authorization_id=authorization_id,
                        method=AuthorizationMethod.QR_CODE,
                        expires_at=created.expires_at,
                    )
                ],
                metadata,
            )
        assert row is not None
        return QrCode(
            authorization=_view(row),
            png=qr.qr_png(created.qr_content),
            svg=qr.qr_svg(created.qr_content),
        )

    async def status(
        self, candidate_id: uuid.UUID, authorization_id: uuid.UUID
    ) -> AuthorizationView:
        """The authorisation's state; while it is open, ask CHSI (the fallback to callbacks)."""
        row = await self._pool.fetchrow(
            "SELECT * FROM credential.authorizations WHERE authorization_id = $1",
            authorization_id,
        )
        if row is None or row["candidate_id"] != candidate_id:
            raise AuthorizationNotFound()
        if row["status"] == AuthorizationStatus.REQUESTED.value and row["ticket"]:
            try:
                snapshot = await self._chsi.get_authorization(row["ticket"])
            except ProviderUnavailable:
                log.warning("CHSI unavailable while polling %s", authorization_id)
                snapshot = None
            if snapshot is not None:
                await self._complete(row["ticket"], snapshot, Actor.system("chsi-poll"))
            elif self._now() > row["expires_at"] + ABANDON_AFTER:
                await self._expire(row["ticket"])
            row = await self._pool.fetchrow(
                "SELECT * FROM credential.authorizations WHERE authorization_id = $1",
                authorization_id,
            )
            assert row is not None
        return _view(row)

    async def handle_callback(self, raw_body: bytes, signature: str | None) -> str:
        """CHSI's signed decision: 'recorded' the first time, 'duplicate' after."""
        now = self._now()
        verify_callback_signature(self._secret, signature, raw_body, now, self._tolerance)
        callback = parse_callback(raw_body)
        row = await self._pool.fetchrow(
            "SELECT * FROM credential.authorizations WHERE ticket = $1", callback.ticket
        )
        if row is None or str(row["authorization_id"]) != callback.state:
            raise AuthorizationNotFound(f"callback for an unknown ticket {callback.ticket[:6]}…")
        async with self._pool.acquire() as conn:
            seen = await conn.fetchval(
                "SELECT true FROM credential.callback_receipts"
                " WHERE ticket = $1 AND signature = $2",
                callback.ticket,
                signature,
            )
        if seen or row["status"] != AuthorizationStatus.REQUESTED.value:
            return "duplicate"
        # The callback says only that a decision exists; the records come from CHSI itself.
        snapshot = await self._chsi.get_authorization(callback.ticket)
        recorded = await self._complete(
            callback.ticket, snapshot, Actor.system("chsi-callback"), receipt=signature
        )
        return "recorded" if recorded else "duplicate"

    async def _complete(
        self,
        ticket: str,
        snapshot: AuthorizationSnapshot,
        actor: Actor,
        *,
        receipt: str | None = None,
    ) -> bool:
        """Record what CHSI says about an authorisation; False when it was recorded already."""
        now = self._now()
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM credential.authorizations WHERE ticket = $1 FOR UPDATE", ticket
            )
            if row is None:
                raise AuthorizationNotFound()
            if receipt is not None:
                await conn.execute(
                    "INSERT INTO credential.callback_receipts (ticket, signature) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING",
                    ticket,
                    receipt,
                )
            aggregate = _aggregate(row)
            if aggregate.is_decided or aggregate.status is AuthorizationStatus.EXPIRED:
                return False
            metadata = Metadata(actor=actor)
            candidate_id = aggregate.candidate_id
            if snapshot.status == "pending":
                if now > aggregate.expires_at + LATE_CALLBACK_GRACE:
                    await self._mark_expired(conn, aggregate, metadata)
                    return True
                return False
            lapsed = snapshot.status == "expired" or (
                snapshot.decided_at is not None and snapshot.decided_at > aggregate.expires_at
            )
            if lapsed:
                await self._mark_expired(conn, aggregate, metadata)
                return True
            if snapshot.status == "denied":
                await conn.execute(
                    "UPDATE credential.authorizations SET status = 'denied', decided_at = $2"
                    " WHERE authorization_id = $1",
                    aggregate.authorization_id,
                    snapshot.decided_at or now,
                )
                log.info("authorisation %s denied by the candidate", aggregate.authorization_id)
                return True
            aggregate.approve(now, decided_at=snapshot.decided_at)  # checks expiry once more
            who = await self._candidate(conn, candidate_id)
            matching = self._match(snapshot.records, who)
            degrees = await self._record_degrees(
                conn,
                who,
                aggregate.authorization_id,
                matching.accepted,
                now,
                (now + VERIFICATION_VALIDITY).date(),
            )
            await conn.execute(
                """
                UPDATE credential.authorizations
                SET status = 'approved', decided_at = $2, accepted_records = $3,
                    refused_records = $4, refused_fields = $5
                WHERE authorization_id = $1
                """,
                aggregate.authorization_id,
                snapshot.decided_at or now,
                len(matching.accepted),
                matching.refused,
                sorted(matching.refused_fields),
            )
            await self._append(
                conn,
                candidate_id,
                [
                    DegreesVerified(
                        candidate_id=candidate_id,
                        authorization_id=aggregate.authorization_id,
                        degrees=degrees,
                        valid_until=(now + VERIFICATION_VALIDITY).date(),
                    )
                ],
                metadata,
            )
            return True

    async def _mark_expired(
        self, conn: Conn, aggregate: QrAuthorization, metadata: Metadata
    ) -> None:
        await conn.execute(
            "UPDATE credential.authorizations SET status = 'expired' WHERE authorization_id = $1",
            aggregate.authorization_id,
        )
        await self._append(
            conn,
            aggregate.candidate_id,
            [
                DegreeAuthorizationExpired(
                    candidate_id=aggregate.candidate_id,
                    authorization_id=aggregate.authorization_id,
                    degree_refs=[],
                )
            ],
            metadata,
        )

    async def _expire(self, ticket: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM credential.authorizations WHERE ticket = $1 FOR UPDATE", ticket
            )
            if row is not None and row["status"] == AuthorizationStatus.REQUESTED.value:
                await self._mark_expired(
                    conn, _aggregate(row), Metadata(actor=Actor.system("chsi-expiry"))
                )

    async def sweep_lapsed(self, *, batch: int = 100) -> int:
        """Settle open authorisations past their expiry: ask CHSI once, else expire them."""
        rows = await self._pool.fetch(
            "SELECT ticket, expires_at FROM credential.authorizations"
            " WHERE status = 'requested' AND method = 'qr_code' AND expires_at < $1"
            " ORDER BY expires_at LIMIT $2",
            self._now() - LATE_CALLBACK_GRACE,
            batch,
        )
        settled = 0
        for row in rows:
            try:
                snapshot = await self._chsi.get_authorization(row["ticket"])
            except ProviderUnavailable:
                if self._now() > row["expires_at"] + ABANDON_AFTER:
                    await self._expire(row["ticket"])
                    settled += 1
                continue
            except AuthorizationNotFound:  # CHSI forgot it: it cannot be approved any more
                await self._expire(row["ticket"])
                settled += 1
                continue
            if await self._complete(row["ticket"], snapshot, Actor.system("chsi-expiry")):
                settled += 1
        return settled

    # -- online verification code -----------------------------------------------------------

    async def redeem_code(
        self, candidate_id: uuid.UUID, text: str, *, correlation_id: uuid.UUID
    ) -> tuple[AuthorizationView, list[VerifiedDegree]]:
        """在线验证码: verify one record by its CHSI code; only the candidate's own is accepted."""
        code = parse_verification_code(text)
        async with self._pool.acquire() as conn:
            who = await self._candidate(conn, candidate_id)
        lookup = await self._chsi.lookup_verification_code(code.value)
        fields = self._holder_fields(lookup.record, who)
        if fields:
            raise RecordHolderMismatch(tuple(sorted(fields)))
        now = self._now()
        authorization_id = self._new_id()
        metadata = Metadata(
            actor=Actor(kind="candidate", id=str(candidate_id)), correlation_id=correlation_id
        )
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """
                INSERT INTO credential.authorizations (authorization_id, candidate_id, method,
                    expires_at, status, decided_at, accepted_records)
                VALUES ($1, $2, 'verification_code', $3, 'approved', $3, 1)
                RETURNING *
                """,
                authorization_id,
                candidate_id,
                now,
            )
            degrees = await self._record_degrees(
                conn, who, authorization_id, [lookup.record], now, lookup.valid_until
            )
            await self._append(
                conn,
                candidate_id,
                [
                    DegreeAuthorizationRequested(
                        candidate_id=candidate_id,
                        authorization_id=authorization_id,
                        method=AuthorizationMethod.VERIFICATION_CODE,
                        expires_at=now,
                    ),
                    DegreesVerified(
                        candidate_id=candidate_id,
                        authorization_id=authorization_id,
                        degrees=degrees,
                        valid_until=lookup.valid_until,
                    ),
                ],
                metadata,
            )
        assert row is not None
        return _view(row), degrees

    # -- reads ------------------------------------------------------------------------------

    async def degrees(self, candidate_id: uuid.UUID) -> list[DegreeView]:
        """查看已验证学历信息: the candidate's verified degrees, newest first."""
        rows = await self._pool.fetch(
            "SELECT * FROM credential.degrees WHERE candidate_id = $1"
            " ORDER BY verified_at DESC, degree_ref",
            candidate_id,
        )
        return [
            DegreeView(
                degree_ref=r["degree_ref"],
                holder_name=r["holder_name"],
                id_number_masked=r["id_number_masked"],
                degree=r["degree"],
                verified_at=r["verified_at"],
                valid_until=r["valid_until"],
            )
            for r in rows
        ]
