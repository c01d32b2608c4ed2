"""Media's HTTP API: upload, list, show, stream, sign and delete certificate photos."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

from fastapi import Depends, FastAPI, Request, Response, status
from pydantic import BaseModel, Field

from media_service import bootstrap
from media_service.adapters.multipart import MAX_OTHER_BYTES, read_file_part
from media_service.adapters.storage import CACHE_CONTROL, Variant, disposition_of
from media_service.domain.access import Viewer
from media_service.domain.errors import PhotoTooLarge
from media_service.domain.photo_rules import MAX_UPLOAD_BYTES
from media_service.service_layer.photos import Photo
from media_service.settings import MediaSettings
from servicekit.app import create_app, identity_verified_lifespan
from servicekit.auth import (
    CurrentCandidate,
    CurrentPrincipal,
    Principal,
    TokenVerifier,
)
from servicekit.context import correlation_id_of
from servicekit.health import platform_kafka_check
from servicekit.openapi import errors

log = logging.getLogger(__name__)

PHOTOS = "/api/media/photos"
# The multipart envelope around the file: part headers, boundaries and small fields.
ENVELOPE_BYTES = MAX_OTHER_BYTES + 4096
# The generic body limit must not answer before the upload handler can say "photo over 3 MB"
# from Content-Length; the handler stops reading at the photo limit itself.
UPLOAD_BODY_BACKSTOP = 64 * 1024 * 1024


class PhotoRead(BaseModel):
    """A stored certificate photo."""

    photo_id: uuid.UUID
    owner_id: uuid.UUID
    format: str = Field(description="jpeg or png: the original's format")
    width: int = Field(description="pixels, upright")
    height: int = Field(description="pixels, upright")
    size_bytes: int
    sha256: str
    uploaded_at: datetime
    pinned: bool = Field(description="cited by a submitted application: kept, cannot be deleted")
    display_url: str = Field(description="this API's URL of the upright display copy")
    thumbnail_url: str = Field(description="this API's URL of the thumbnail")
    original_url: str = Field(description="this API's URL of the original bytes (evidence)")
    full_url: str = Field(description="this API's URL of the sanitised full-resolution copy")

    @classmethod
    def of(cls, photo: Photo) -> PhotoRead:
        """The API form of a photo."""
        base = f"{PHOTOS}/{photo.photo_id}"
        return cls(
            photo_id=photo.photo_id,
            owner_id=photo.owner_id,
            format=photo.format,
            width=photo.width,
            height=photo.height,
            size_bytes=photo.size_bytes,
            sha256=photo.sha256,
            uploaded_at=photo.uploaded_at,
            pinned=photo.pinned,
            display_url=f"{base}/display",
            thumbnail_url=f"{base}/thumbnail",
            original_url=f"{base}/original",
            full_url=f"{base}/full",
        )


class PhotoList(BaseModel):
    """The caller's photos, newest first."""

    photos: list[PhotoRead]


class PhotoViewRead(BaseModel):
    """One time staff were given one of the caller's photos: when, what, in which roles."""

    photo_id: uuid.UUID
    viewed_at: datetime
    given: str = Field(description="links, display, thumbnail or original")
    roles: list[str]


class PhotoViews(BaseModel):
    """The caller's photos' views by staff, newest first (at most 200)."""

    views: list[PhotoViewRead]


class SignedLinks(BaseModel):
    """Presigned URLs of a photo's copies, valid until `expires_at`."""

    full: str = Field(description="sanitised full-resolution copy: re-encoded, no metadata")
    display: str
    thumbnail: str
    original: str | None = Field(
        description="the untouched original: only for its owner (staff: GET …/original)"
    )
    expires_at: datetime


def _media(request: Request) -> bootstrap.Media:
    media: bootstrap.Media = request.app.state.media
    return media


Service = Annotated[bootstrap.Media, Depends(_media)]


def viewer_of(principal: Principal) -> Viewer:
    """The access rules' view of a verified caller."""
    return Viewer(
        account_id=principal.account_id,
        is_candidate=principal.is_candidate,
        roles=frozenset(principal.roles),
        confirmation_points=principal.confirmation_points,
    )


def attach(app: FastAPI, media: bootstrap.Media, verifier: TokenVerifier) -> None:
    """Give the app its wired service and token verifier."""
    app.state.media = media
    app.state.token_verifier = verifier


def build_app(start: Callable[[], Awaitable[bootstrap.Media]] = bootstrap.start) -> FastAPI:
    """The media API; `start` builds the wired service at startup (tests give their own)."""

    lifespan = identity_verified_lifespan(
        "media", start, attach, lambda: MediaSettings().identity_url
    )

    async def database_ready() -> None:
        await app.state.media.pool.fetchval("SELECT 1")

    async def storage_ready() -> None:
        await app.state.media.objects.check()

    app = create_app(
        "media",
        version="0.1.0",
        max_body_bytes=16 * 1024,
        body_limits={PHOTOS: UPLOAD_BODY_BACKSTOP},
        health_checks={"postgres": database_ready, "s3": storage_ready},
        advisory_checks={"kafka": platform_kafka_check()},  # the outbox holds writes
        lifespan=lifespan,
    )

    @app.post(
        PHOTOS,
        status_code=status.HTTP_201_CREATED,
        response_model=PhotoRead,
        tags=["photos"],
        responses=errors(415, 429),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    }
                },
            }
        },
    )
    async def upload(request: Request, media: Service, candidate: CurrentCandidate) -> PhotoRead:
        """上传证书照片: JPG or PNG, at most 3 MB, larger than 800×600 (multipart field `file`)."""
        owner_id = uuid.UUID(candidate.account_id)
        correlation_id = correlation_id_of(request)
        async with media.photos.admission():
            try:
                declared = _declared_length(request)
                if declared is not None and declared > MAX_UPLOAD_BYTES + ENVELOPE_BYTES:
                    raise PhotoTooLarge(declared, MAX_UPLOAD_BYTES)
                uploaded = await read_file_part(
                    request.headers.get("content-type"), request.stream(), MAX_UPLOAD_BYTES
                )
            except PhotoTooLarge as exc:
                await media.photos.record_rejection(
                    owner_id, exc, exc.size, correlation_id=correlation_id
                )
                raise
            photo = await media.photos.upload(
                owner_id, uploaded.data, correlation_id=correlation_id
            )
        log.info(
            "photo uploaded",
            extra={"photo_id": str(photo.photo_id), "bytes": photo.size_bytes},
        )
        return PhotoRead.of(photo)

    @app.get(PHOTOS, response_model=PhotoList, tags=["photos"])
    async def my_photos(media: Service, candidate: CurrentCandidate) -> PhotoList:
        """我的证书照片: the caller's photos, newest first."""
        photos = await media.photos.owned(uuid.UUID(candidate.account_id))
        return PhotoList(photos=[PhotoRead.of(p) for p in photos])

    @app.get(PHOTOS + "/views", response_model=PhotoViews, tags=["photos"])
    async def my_photo_views(media: Service, candidate: CurrentCandidate) -> PhotoViews:
        """我的照片查看记录: when reviewers were given the caller's photos, newest first; who
        they were is kept for the audit (`ops history`), not shown here."""
        records = await media.photos.views_of(uuid.UUID(candidate.account_id))
        return PhotoViews(
            views=[
                PhotoViewRead(
                    photo_id=r.photo_id, viewed_at=r.viewed_at, given=r.given, roles=list(r.roles)
                )
                for r in records
            ]
        )

    @app.get(PHOTOS + "/{photo_id}", response_model=PhotoRead, tags=["photos"])
    async def show(photo_id: uuid.UUID, media: Service, principal: CurrentPrincipal) -> PhotoRead:
        """查看照片信息: for the owner and the reviewers of an application citing it."""
        return PhotoRead.of(await media.photos.visible(viewer_of(principal), photo_id))

    @app.get(PHOTOS + "/{photo_id}/links", response_model=SignedLinks, tags=["photos"])
    async def links(
        photo_id: uuid.UUID,
        media: Service,
        principal: CurrentPrincipal,
        request: Request,
        response: Response,
    ) -> SignedLinks:
        """Short-lived presigned URLs of the copies (for pages that show many photos); a staff
        member's are recorded (`PhotoViewed`) before they are given, and never include the
        untouched original (`original` is null): staff see the sanitised `full` copy."""
        viewer = viewer_of(principal)
        photo = await media.photos.visible(viewer, photo_id)
        await media.photos.record_view(viewer, photo, "links", correlation_id_of(request))
        signed = await media.photos.links(viewer, photo)
        response.headers["Cache-Control"] = "no-store"
        urls = {link.variant: link.url for link in signed}
        return SignedLinks(
            full=urls[Variant.FULL],
            display=urls[Variant.DISPLAY],
            thumbnail=urls[Variant.THUMBNAIL],
            original=urls.get(Variant.ORIGINAL),
            expires_at=min(link.expires_at for link in signed),
        )

    @app.get(
        PHOTOS + "/{photo_id}/{variant}",
        response_class=Response,
        tags=["photos"],
        responses={200: {"content": {"image/jpeg": {}, "image/png": {}}}},
    )
    async def content(
        photo_id: uuid.UUID,
        variant: Variant,
        request: Request,
        media: Service,
        principal: CurrentPrincipal,
    ) -> Response:
        """查看照片: the sanitised full-resolution copy (`full`), display copy, thumbnail or the
        untouched original, streamed through the service; a staff member's view is recorded
        (`PhotoViewed`, with what was given) before the bytes are given: for staff, asking for
        `original` is the explicit, recorded request for the file exactly as uploaded."""
        viewer = viewer_of(principal)
        photo = await media.photos.visible(viewer, photo_id)
        stored_as = media.photos.stored_variant(photo, variant)
        etag = f'"{photo.sha256[:32]}-{stored_as.value}"'
        headers = {
            "ETag": etag,
            "Cache-Control": CACHE_CONTROL,
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": disposition_of(photo_id, variant, photo.format),
            "Content-Security-Policy": "default-src 'none'; sandbox",
        }
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
        stored = await media.photos.read(photo, variant)
        await media.photos.record_view(viewer, photo, variant.value, correlation_id_of(request))
        return Response(stored.body, media_type=stored.content_type, headers=headers)

    @app.put(
        PHOTOS + "/{photo_id}/citations/{application_id}/{certificate_id}",
        status_code=status.HTTP_204_NO_CONTENT,
        tags=["photos"],
    )
    async def cite(
        photo_id: uuid.UUID,
        application_id: uuid.UUID,
        certificate_id: uuid.UUID,
        media: Service,
        candidate: CurrentCandidate,
    ) -> Response:
        """引用照片: the application service records, on the owner's behalf and before it records
        the certificate, that a certificate cites the photo; from then on the photo cannot be
        deleted (409 `media.in_use`) nor swept. Idempotent; 404 for a deleted or another's photo.
        """
        await media.photos.cite(viewer_of(candidate), photo_id, application_id, certificate_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    @app.delete(PHOTOS + "/{photo_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["photos"])
    async def delete(photo_id: uuid.UUID, media: Service, candidate: CurrentCandidate) -> Response:
        """删除照片: only a photo nothing cites (409 `media.pinned` once submitted, 409
        `media.in_use` while a draft's certificate cites it)."""
        await media.photos.delete(viewer_of(candidate), photo_id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return app


def _declared_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError:
        return None  # the body-limit middleware has refused malformed lengths already


app = build_app()
