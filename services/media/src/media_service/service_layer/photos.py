"""Photo use cases: upload, read, sign, delete, and the sweeps that keep the bucket honest.

The order of writes never leaves an event pointing at a missing object:
1. a `pending_uploads` row is committed (it names the objects about to be written);
2. the original, display copy and thumbnail are written to the bucket;
3. one transaction appends PhotoUploaded, records the photo and removes the pending row.
If 2 or 3 fails, the objects are removed at once; if even that fails (storage down, process
killed), the pending row outlives its age and the orphan sweep removes them later.
Deletion runs the other way: the event first, then the objects (a deleted photo's objects are
purged by the same sweep if the first attempt fails).

Citations (ADR 0015): the application service records through `cite` that a draft's
certificate cites a photo before it records the certificate. `cite`, `delete` and the unused
sweep all hold the photo's row lock while they decide, so a citation and a deletion happen in one
order: a cited photo is never deleted or swept, and a deleted photo cannot be cited.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar

import asyncpg
from pydantic import Field

from contracts.media import (
    PHOTO_STREAM,
    PHOTO_VIEW_STREAM_TYPE,
    PhotoDeleted,
    PhotoDeletion,
    PhotoFormat,
    PhotoRejected,
    PhotoRejection,
    PhotoUploaded,
)
from eventkit.db import Conn
from eventkit.envelope import Actor, DomainEvent, Metadata, NewEvent
from eventkit.health import beat
from eventkit.store import EventStore
from media_service.adapters import images
from media_service.adapters.storage import (
    ObjectStore,
    StoredObject,
    Variant,
    all_keys,
    disposition_of,
    object_key,
)
from media_service.adapters.usage import USAGE_SCHEMA, in_use_sql
from media_service.domain.access import PhotoUse, Viewer, may_delete, may_view, unique_formats
from media_service.domain.errors import (
    CorruptPhoto,
    EmptyPhoto,
    ImageTooLarge,
    MediaError,
    PhotoInUse,
    PhotoNotFound,
    PhotoPinned,
    PhotoTooLarge,
    QuotaExceeded,
    ResolutionTooLow,
    StorageUnavailable,
    UnsupportedPhotoType,
    UploadsBusy,
)

log = logging.getLogger(__name__)

STREAM_TYPE = PHOTO_STREAM.stream_type


@dataclass(frozen=True)
class ViewRecord:
    """One time staff were given a photo, as its owner may know it (no staff identity)."""

    photo_id: uuid.UUID
    viewed_at: datetime
    given: str
    roles: tuple[str, ...]


class PhotoViewed(DomainEvent):
    """A staff member was given a candidate's photo: its signed links, or one copy's bytes."""

    event_type: ClassVar[str] = "PhotoViewed"

    photo_id: uuid.UUID
    owner_id: uuid.UUID
    given: str = Field(pattern=r"^(links|full|display|thumbnail|original)$")
    roles: tuple[str, ...]


JPEG = "image/jpeg"
CONTENT_TYPES = {"jpeg": JPEG, "png": "image/png"}
REJECTION_OF: dict[type[MediaError], PhotoRejection] = {
    EmptyPhoto: PhotoRejection.EMPTY_FILE,
    PhotoTooLarge: PhotoRejection.FILE_TOO_LARGE,
    UnsupportedPhotoType: PhotoRejection.UNSUPPORTED_FORMAT,
    CorruptPhoto: PhotoRejection.UNREADABLE,
    ResolutionTooLow: PhotoRejection.RESOLUTION_TOO_LOW,
    ImageTooLarge: PhotoRejection.TOO_MANY_PIXELS,
}


class _NothingWritten(Exception):
    """Every object write failed without reaching storage."""

    def __init__(self, cause: StorageUnavailable) -> None:
        super().__init__(str(cause))
        self.cause = cause


@dataclass(frozen=True, slots=True)
class Limits:
    """Tunables of the use cases (from MediaSettings)."""

    max_photos_per_owner: int = 60
    link_ttl: timedelta = timedelta(minutes=5)
    unused_ttl: timedelta = timedelta(days=30)
    orphan_age: timedelta = timedelta(minutes=30)
    process_workers: int = 2
    max_uploads_in_flight: int = 16
    # How long an upload waits for a decode slot (one per image worker) before 503 media.busy.
    decode_wait: timedelta = timedelta(seconds=2)


@dataclass(frozen=True, slots=True)
class Photo:
    """A live photo as the API shows it."""

    photo_id: uuid.UUID
    owner_id: uuid.UUID
    format: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    display_width: int
    display_height: int
    uploaded_at: datetime
    pinned: bool
    cited_at_points: frozenset[str] = field(default_factory=frozenset)
    full_bytes: int | None = None  # None: stored before sanitised full copies existed

    @property
    def use(self) -> PhotoUse:
        """The facts access rules decide on."""
        return PhotoUse(owner_id=str(self.owner_id), cited_at_points=self.cited_at_points)


@dataclass(frozen=True, slots=True)
class SignedLink:
    """A presigned URL for one copy."""

    variant: Variant
    url: str
    expires_at: datetime


@dataclass
class SweepReport:
    """What one sweep did."""

    orphans_removed: int = 0
    unused_deleted: int = 0
    purged: int = 0
    failures: int = 0

    @property
    def total(self) -> int:
        """Everything the sweep changed."""
        return self.orphans_removed + self.unused_deleted + self.purged


_PHOTO_COLUMNS = f"""
    p.photo_id, p.owner_id, p.format, p.width, p.height, p.size_bytes, p.sha256,
    p.display_width, p.display_height, p.uploaded_at, p.full_bytes,
    EXISTS (SELECT 1 FROM {USAGE_SCHEMA}.pins u WHERE u.photo_id = p.photo_id) AS pinned,
    ARRAY(SELECT DISTINCT u.confirmation_point_id FROM {USAGE_SCHEMA}.pins u
          WHERE u.photo_id = p.photo_id AND u.candidate_id = p.owner_id) AS cited_at_points
"""


def _photo(row: asyncpg.Record) -> Photo:
    return Photo(
        photo_id=row["photo_id"],
        owner_id=row["owner_id"],
        format=row["format"],
        width=row["width"],
        height=row["height"],
        size_bytes=row["size_bytes"],
        sha256=row["sha256"],
        display_width=row["display_width"],
        display_height=row["display_height"],
        uploaded_at=row["uploaded_at"],
        pinned=row["pinned"],
        cited_at_points=frozenset(row["cited_at_points"]),
        full_bytes=row["full_bytes"],
    )


class Photos:
    """The media service's use cases over its database, event store and bucket."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: EventStore,
        objects: ObjectStore,
        limits: Limits = Limits(),
        *,
        processor: Callable[[bytes], images.ProcessedPhoto] = images.process,
        new_id: Callable[[], uuid.UUID] = uuid.uuid4,
    ) -> None:
        self._pool = pool
        self._store = store
        self._objects = objects
        self.limits = limits
        self._processor = processor
        self._new_id = new_id
        self._cpu = ThreadPoolExecutor(
            max_workers=limits.process_workers, thread_name_prefix="media-pillow"
        )
        self._in_flight = 0
        # Decodes running at once: each may hold up to the decode budget (photo_rules), so
        # their number, not only the uploads in flight, bounds the memory.
        self._decodes = asyncio.Semaphore(limits.process_workers)

    def close(self) -> None:
        """Stop the image-processing threads."""
        self._cpu.shutdown(wait=True, cancel_futures=True)

    # -- upload -----------------------------------------------------------------------------

    @asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        """Hold an upload slot while the body is read and processed; refuse when all are taken.

        This bounds the memory of uploads in flight (each holds at most 3 MB plus its decode).
        """
        if self._in_flight >= self.limits.max_uploads_in_flight:
            raise UploadsBusy()
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1

    @asynccontextmanager
    async def _decode_slot(self) -> AsyncIterator[None]:
        """One of the `process_workers` decode slots; waits at most `decode_wait` for one, then
        `UploadsBusy` (503, Retry-After) rather than queueing decodes without bound."""
        try:
            async with asyncio.timeout(self.limits.decode_wait.total_seconds()):
                await self._decodes.acquire()
        except TimeoutError:
            raise UploadsBusy() from None
        try:
            yield
        finally:
            self._decodes.release()

    async def upload(self, owner_id: uuid.UUID, data: bytes, *, correlation_id: uuid.UUID) -> Photo:
        """Validate, derive and store a photo; PhotoUploaded is appended only once it is stored.

        A photo that fails validation raises its `MediaError` after PhotoRejected is recorded.
        """
        await self._check_quota(owner_id)
        async with self._decode_slot():
            try:
                processed = await asyncio.get_running_loop().run_in_executor(
                    self._cpu, self._processor, data
                )
            except MediaError as exc:
                await self.record_rejection(owner_id, exc, len(data), correlation_id=correlation_id)
                raise
        photo_id = self._new_id()
        await self._pool.execute(
            "INSERT INTO media.pending_uploads (photo_id, owner_id) VALUES ($1, $2)",
            photo_id,
            owner_id,
        )
        try:
            await self._write_objects(photo_id, owner_id, data, processed)
            await self._record_upload(photo_id, owner_id, processed, correlation_id)
        except _NothingWritten as exc:  # storage was never reached: only the pending row to go
            await self._pool.execute(
                "DELETE FROM media.pending_uploads WHERE photo_id = $1", photo_id
            )
            raise exc.cause from None
        except BaseException:
            await self._discard(photo_id)
            raise
        photo = await self._find(photo_id)
        assert photo is not None
        return photo

    async def _check_quota(self, owner_id: uuid.UUID) -> None:
        live = await self._pool.fetchval(
            "SELECT count(*) FROM media.photos WHERE owner_id = $1 AND deleted_at IS NULL",
            owner_id,
        )
        if live >= self.limits.max_photos_per_owner:
            raise QuotaExceeded(self.limits.max_photos_per_owner)

    async def _write_objects(
        self,
        photo_id: uuid.UUID,
        owner_id: uuid.UUID,
        original: bytes,
        processed: images.ProcessedPhoto,
    ) -> None:
        metadata = {
            "photo-id": str(photo_id),
            "owner-id": str(owner_id),
            "sha256": processed.sha256,
        }
        writes = [
            (Variant.ORIGINAL, original, CONTENT_TYPES[processed.format]),
            (Variant.FULL, processed.full_jpeg, JPEG),
            (Variant.DISPLAY, processed.display_jpeg, JPEG),
            (Variant.THUMBNAIL, processed.thumbnail_jpeg, JPEG),
        ]
        # Wait for every write, failed or not, before reporting: a discard must not race a put
        # that is still in flight.
        results = await asyncio.gather(
            *(
                self._objects.put(
                    object_key(photo_id, variant),
                    body,
                    content_type,
                    metadata,
                    disposition=disposition_of(photo_id, variant, processed.format),
                )
                for variant, body, content_type in writes
            ),
            return_exceptions=True,
        )
        failures = [r for r in results if isinstance(r, BaseException)]
        unreached = [f for f in failures if isinstance(f, StorageUnavailable) and not f.reached]
        if unreached and len(unreached) == len(results):
            raise _NothingWritten(unreached[0])
        if failures:
            raise failures[0]

    async def _record_upload(
        self,
        photo_id: uuid.UUID,
        owner_id: uuid.UUID,
        processed: images.ProcessedPhoto,
        correlation_id: uuid.UUID,
    ) -> None:
        event = PhotoUploaded(
            photo_id=photo_id,
            owner_id=owner_id,
            width=processed.width,
            height=processed.height,
            size_bytes=processed.original_bytes,
            sha256=processed.sha256,
            formats=[PhotoFormat(f) for f in unique_formats(processed.format, ["jpeg"])],
        )
        metadata = Metadata(
            actor=Actor(kind="candidate", id=str(owner_id)), correlation_id=correlation_id
        )
        async with self._pool.acquire() as conn, conn.transaction():
            await self._store.append(
                STREAM_TYPE, str(photo_id), 0, [NewEvent.of(event)], metadata, conn=conn
            )
            await conn.execute(
                """
                INSERT INTO media.photos (photo_id, owner_id, format, width, height, size_bytes,
                    sha256, display_width, display_height, display_bytes, thumbnail_bytes,
                    full_bytes)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
                """,
                photo_id,
                owner_id,
                processed.format,
                processed.width,
                processed.height,
                processed.original_bytes,
                processed.sha256,
                processed.display_width,
                processed.display_height,
                processed.display_bytes,
                processed.thumbnail_bytes,
                processed.full_bytes,
            )
            await conn.execute("DELETE FROM media.pending_uploads WHERE photo_id = $1", photo_id)

    async def _discard(self, photo_id: uuid.UUID) -> None:
        """Best effort after a failed upload: remove its objects, then its pending row."""
        try:
            await self._objects.delete(all_keys(photo_id))
            await self._pool.execute(
                "DELETE FROM media.pending_uploads WHERE photo_id = $1", photo_id
            )
        except Exception:  # the orphan sweep finishes the job
            log.warning("upload %s left for the orphan sweep", photo_id, exc_info=True)

    async def record_rejection(
        self, owner_id: uuid.UUID, error: MediaError, size: int, *, correlation_id: uuid.UUID
    ) -> None:
        """Record PhotoRejected for a refused file (no object is stored for it)."""
        reason = REJECTION_OF.get(type(error))
        if reason is None:
            return
        width = getattr(error, "width", None) if isinstance(error, ResolutionTooLow) else None
        height = getattr(error, "height", None) if isinstance(error, ResolutionTooLow) else None
        event = PhotoRejected(
            photo_id=self._new_id(),
            owner_id=owner_id,
            reason_code=reason,
            reason=error.message,
            width=width,
            height=height,
            size_bytes=size,
        )
        metadata = Metadata(
            actor=Actor(kind="candidate", id=str(owner_id)), correlation_id=correlation_id
        )
        try:
            await self._store.append(
                STREAM_TYPE, str(event.photo_id), 0, [NewEvent.of(event)], metadata
            )
        except Exception:  # the candidate still gets the real reason
            log.warning("could not record a rejected upload", exc_info=True)

    # -- reads ------------------------------------------------------------------------------

    async def _find(self, photo_id: uuid.UUID) -> Photo | None:
        row = await self._pool.fetchrow(
            f"SELECT {_PHOTO_COLUMNS} FROM media.photos p"
            " WHERE p.photo_id = $1 AND p.deleted_at IS NULL",
            photo_id,
        )
        return _photo(row) if row else None

    async def visible(self, viewer: Viewer, photo_id: uuid.UUID) -> Photo:
        """The photo if it exists and `viewer` may see it; otherwise `PhotoNotFound`."""
        photo = await self._find(photo_id)
        if photo is None or not may_view(viewer, photo.use):
            raise PhotoNotFound()
        return photo

    async def owned(self, owner_id: uuid.UUID) -> list[Photo]:
        """A candidate's live photos, newest first."""
        rows = await self._pool.fetch(
            f"SELECT {_PHOTO_COLUMNS} FROM media.photos p"
            " WHERE p.owner_id = $1 AND p.deleted_at IS NULL"
            " ORDER BY p.uploaded_at DESC, p.photo_id",
            owner_id,
        )
        return [_photo(row) for row in rows]

    @staticmethod
    def stored_variant(photo: Photo, variant: Variant) -> Variant:
        """The copy actually kept for `variant`: a photo from before sanitised full copies has
        its display copy in place of one."""
        if variant is Variant.FULL and photo.full_bytes is None:
            return Variant.DISPLAY
        return variant

    async def read(self, photo: Photo, variant: Variant) -> StoredObject:
        """The bytes of one copy of a photo the caller has already been allowed to see."""
        variant = self.stored_variant(photo, variant)
        stored = await self._objects.get(object_key(photo.photo_id, variant))
        if stored is None:
            log.error("photo %s has no %s object", photo.photo_id, variant.value)
            raise StorageUnavailable(f"object {variant.value} of {photo.photo_id} is missing")
        return stored

    async def record_view(
        self, viewer: Viewer, photo: Photo, given: str, correlation_id: uuid.UUID
    ) -> None:
        """Record that a staff member was given `photo` (`PhotoViewed` on its private view
        stream, PHOTO_VIEW_STREAM_TYPE); the owner's own views are not recorded."""
        if viewer.is_candidate:
            return  # only its owner: may_view lets no other candidate see a photo
        event = PhotoViewed(
            photo_id=photo.photo_id,
            owner_id=photo.owner_id,
            given=given,
            roles=tuple(sorted(viewer.roles)),
        )
        metadata = Metadata(
            actor=Actor(kind="staff", id=viewer.account_id), correlation_id=correlation_id
        )
        stream_id = str(photo.photo_id)
        async with self._pool.acquire() as conn, conn.transaction():
            # views of one photo take turns (a lock for this transaction), so none conflicts
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"{PHOTO_VIEW_STREAM_TYPE}/{stream_id}",
            )
            version = await self._store.version(PHOTO_VIEW_STREAM_TYPE, stream_id, conn=conn)
            await self._store.append(
                PHOTO_VIEW_STREAM_TYPE,
                stream_id,
                version,
                [NewEvent.of(event)],
                metadata,
                conn=conn,
            )

    async def views_of(self, owner_id: uuid.UUID, limit: int = 200) -> list[ViewRecord]:
        """When staff were given the owner's photos, newest first (their own record of it)."""
        rows = await self._pool.fetch(
            "SELECT stream_id, occurred_at, payload FROM eventkit.events"
            " WHERE stream_type = $1"
            " AND stream_id IN (SELECT photo_id::text FROM media.photos WHERE owner_id = $2)"
            " ORDER BY occurred_at DESC, stream_version DESC LIMIT $3",
            PHOTO_VIEW_STREAM_TYPE,
            owner_id,
            limit,
        )
        return [
            ViewRecord(
                photo_id=uuid.UUID(row["stream_id"]),
                viewed_at=row["occurred_at"],
                given=row["payload"]["given"],
                roles=tuple(row["payload"]["roles"]),
            )
            for row in rows
        ]

    async def links(self, viewer: Viewer, photo: Photo) -> list[SignedLink]:
        """Short-lived presigned URLs of the copies of a photo the caller has already been
        allowed to see (`visible`): the sanitised ones for everybody, the untouched original
        only for its owner (staff ask for it explicitly, `GET …/original`, which is recorded)."""
        photo_id = photo.photo_id
        links = []
        for variant in Variant:
            is_original = variant is Variant.ORIGINAL
            if is_original and not viewer.is_candidate:
                continue
            stored = self.stored_variant(photo, variant)
            url, expires_at = await self._objects.signed_url(
                object_key(photo_id, stored),
                self.limits.link_ttl,
                content_type=CONTENT_TYPES[photo.format] if is_original else JPEG,
                disposition=disposition_of(photo_id, variant, photo.format),
            )
            links.append(SignedLink(variant, url, expires_at))
        return links

    # -- citations --------------------------------------------------------------------------

    async def cite(
        self,
        viewer: Viewer,
        photo_id: uuid.UUID,
        application_id: uuid.UUID,
        certificate_id: uuid.UUID,
    ) -> None:
        """Record that a certificate of an application cites the owner's photo (idempotent).

        Under the photo's row lock: once this returns, neither the owner nor the sweeper can
        delete the photo until the usage projection has seen the certificate removed or the
        application withdrawn; a photo already deleted (or another's) is `PhotoNotFound`."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT owner_id FROM media.photos"
                " WHERE photo_id = $1 AND deleted_at IS NULL FOR SHARE",
                photo_id,
            )
            if row is None or not may_delete(viewer, PhotoUse(owner_id=str(row["owner_id"]))):
                raise PhotoNotFound()
            await conn.execute(
                "INSERT INTO media.citations (photo_id, application_id, certificate_id)"
                " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                photo_id,
                application_id,
                certificate_id,
            )

    # -- delete -----------------------------------------------------------------------------

    async def delete(self, viewer: Viewer, photo_id: uuid.UUID) -> None:
        """The owner deletes a photo nothing cites (no submission, no draft's certificate)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_PHOTO_COLUMNS} FROM media.photos p"
                " WHERE p.photo_id = $1 AND p.deleted_at IS NULL FOR UPDATE OF p",
                photo_id,
            )
            if row is None:
                raise PhotoNotFound()
            photo = _photo(row)
            if not may_delete(viewer, photo.use):
                raise PhotoNotFound()
            if photo.pinned:
                cases = await conn.fetch(
                    f"SELECT DISTINCT case_number FROM {USAGE_SCHEMA}.pins"
                    " WHERE photo_id = $1 ORDER BY case_number",
                    photo_id,
                )
                raise PhotoPinned([r["case_number"] for r in cases])
            if await conn.fetchval(f"SELECT {in_use_sql('$1')}", photo_id):
                raise PhotoInUse()
            await self._record_deletion(
                conn,
                photo,
                PhotoDeletion.OWNER_DELETED,
                Metadata(actor=Actor(kind="candidate", id=viewer.account_id)),
            )
        await self._purge(photo_id)

    async def _record_deletion(
        self, conn: Conn, photo: Photo, reason: PhotoDeletion, metadata: Metadata
    ) -> None:
        event = PhotoDeleted(photo_id=photo.photo_id, owner_id=photo.owner_id, reason_code=reason)
        # The row lock held by the caller means the stream holds exactly PhotoUploaded.
        await self._store.append(
            STREAM_TYPE, str(photo.photo_id), 1, [NewEvent.of(event)], metadata, conn=conn
        )
        await conn.execute(
            "UPDATE media.photos SET deleted_at = now(), deletion_reason = $2 WHERE photo_id = $1",
            photo.photo_id,
            reason.value,
        )

    async def _purge(self, photo_id: uuid.UUID) -> bool:
        """Remove a deleted photo's objects; False leaves it for the next sweep."""
        try:
            await self._objects.delete(all_keys(photo_id))
        except StorageUnavailable:
            log.warning("objects of deleted photo %s left for the sweep", photo_id, exc_info=True)
            return False
        await self._pool.execute(
            "UPDATE media.photos SET purged_at = now() WHERE photo_id = $1", photo_id
        )
        return True

    # -- sweeps -----------------------------------------------------------------------------

    async def sweep(self, *, batch: int = 200) -> SweepReport:
        """One pass of every sweep: orphaned uploads, unused photos, deleted photos' objects."""
        report = SweepReport()
        await self._sweep_orphans(report, batch)
        await self._sweep_unused(report, batch)
        await self._purge_deleted(report, batch)
        return report

    async def _sweep_orphans(self, report: SweepReport, batch: int) -> None:
        rows = await self._pool.fetch(
            "SELECT photo_id FROM media.pending_uploads"
            " WHERE started_at < now() - $1::interval ORDER BY started_at LIMIT $2",
            self.limits.orphan_age,
            batch,
        )
        for row in rows:
            beat()
            try:
                await self._objects.delete(all_keys(row["photo_id"]))
            except StorageUnavailable:
                report.failures += 1
                continue
            await self._pool.execute(
                "DELETE FROM media.pending_uploads WHERE photo_id = $1", row["photo_id"]
            )
            report.orphans_removed += 1

    async def _sweep_unused(self, report: SweepReport, batch: int) -> None:
        rows = await self._pool.fetch(
            f"""
            SELECT p.photo_id FROM media.photos p
            WHERE p.deleted_at IS NULL AND p.uploaded_at < now() - $1::interval
              AND NOT {in_use_sql("p.photo_id")}
            ORDER BY p.uploaded_at LIMIT $2
            """,
            self.limits.unused_ttl,
            batch,
        )
        metadata = Metadata(actor=Actor.system("media-sweeper"))
        for row in rows:
            beat()  # a sweep through a slow bucket is progress, photo by photo
            async with self._pool.acquire() as conn, conn.transaction():
                locked = await conn.fetchrow(
                    f"SELECT {_PHOTO_COLUMNS} FROM media.photos p WHERE p.photo_id = $1"
                    " AND p.deleted_at IS NULL FOR UPDATE OF p SKIP LOCKED",
                    row["photo_id"],
                )
                if locked is None:
                    continue
                photo = _photo(locked)
                # cited since the candidates were listed (the lock orders it with `cite`)
                if await conn.fetchval(f"SELECT {in_use_sql('$1')}", photo.photo_id):
                    continue
                await self._record_deletion(conn, photo, PhotoDeletion.UNUSED_EXPIRED, metadata)
            report.unused_deleted += 1
            if await self._purge(photo.photo_id):
                report.purged += 1
            else:
                report.failures += 1

    async def _purge_deleted(self, report: SweepReport, batch: int) -> None:
        rows = await self._pool.fetch(
            "SELECT photo_id FROM media.photos WHERE deleted_at IS NOT NULL AND purged_at IS NULL"
            " ORDER BY deleted_at LIMIT $1",
            batch,
        )
        for row in rows:
            beat()
            if await self._purge(row["photo_id"]):
                report.purged += 1
            else:
                report.failures += 1
