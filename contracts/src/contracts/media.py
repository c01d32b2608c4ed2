"""Events published by the media service: certificate photos in object storage."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

from pydantic import ConfigDict, Field

from contracts import _examples as ex
from contracts.base import (
    CandidateId,
    ContractEvent,
    PhotoId,
    ReasonText,
    ServiceContract,
    Sha256Hex,
    Stream,
)

# Private (never published, no topic): one stream per photo in media's own store, an event each
# time someone other than its owner is given the photo (a reviewer's signed links or its bytes),
# so that who saw a candidate's certificate photo is part of the case's audited history.
PHOTO_VIEW_STREAM_TYPE = "media.photo_view"

PHOTO_STREAM = Stream(
    service="media",
    stream_type="media.photo",
    topic="media.photo.v1",
    id_field="photo_id",
    description="证书照片: one stream per uploaded photo (accepted or rejected)",
)
PHOTO_TOPIC = PHOTO_STREAM.topic


class PhotoFormat(StrEnum):
    """An image format the media service stores."""

    JPEG = "jpeg"
    PNG = "png"
    WEBP = "webp"


class PhotoRejection(StrEnum):
    """Why an upload was refused; the seed asks for more than 800×600 and under 3 MB."""

    RESOLUTION_TOO_LOW = "resolution_too_low"
    FILE_TOO_LARGE = "file_too_large"
    UNSUPPORTED_FORMAT = "unsupported_format"
    UNREADABLE = "unreadable"
    EMPTY_FILE = "empty_file"
    TOO_MANY_PIXELS = "too_many_pixels"


class PhotoDeletion(StrEnum):
    """Why a stored photo was deleted."""

    OWNER_DELETED = "owner_deleted"
    UNUSED_EXPIRED = "unused_expired"
    OPS_REMOVED = "ops_removed"


class PhotoUploaded(ContractEvent):
    """证书照片上传: a photo passed validation and is stored; cite it by photo id."""

    event_type: ClassVar[str] = "PhotoUploaded"
    stream: ClassVar[Stream] = PHOTO_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "photo_id": ex.PHOTO_ID,
                    "owner_id": ex.CANDIDATE_ID,
                    "width": 1600,
                    "height": 1200,
                    "size_bytes": 1048576,
                    "sha256": ex.PHOTO_SHA256,
                    "formats": ["jpeg", "webp"],
                }
            ]
        }
    )

    photo_id: PhotoId = Field(description="the stream id")
    owner_id: CandidateId = Field(description="the candidate who uploaded it")
    width: int = Field(gt=0, description="pixels, after applying EXIF orientation")
    height: int = Field(gt=0, description="pixels, after applying EXIF orientation")
    size_bytes: int = Field(gt=0, description="size of the uploaded file")
    sha256: Sha256Hex = Field(description="SHA-256 of the uploaded file, hex")
    formats: list[PhotoFormat] = Field(
        min_length=1, description="formats stored: the original's first, then renditions"
    )


class PhotoRejected(ContractEvent):
    """证书照片不合格: an upload failed validation and was not stored."""

    event_type: ClassVar[str] = "PhotoRejected"
    stream: ClassVar[Stream] = PHOTO_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "photo_id": ex.SECOND_PHOTO_ID,
                    "owner_id": ex.CANDIDATE_ID,
                    "reason_code": "resolution_too_low",
                    "reason": "照片分辨率需大于800×600",
                    "width": 640,
                    "height": 480,
                    "size_bytes": 204800,
                }
            ]
        }
    )

    photo_id: PhotoId = Field(description="id given to the refused upload; the stream id")
    owner_id: CandidateId = Field(description="the candidate who uploaded it")
    reason_code: PhotoRejection = Field(description="stable code of the rejection")
    reason: ReasonText = Field(description="message for the candidate (Chinese)")
    width: int | None = Field(default=None, gt=0, description="pixels, when the image was readable")
    height: int | None = Field(
        default=None, gt=0, description="pixels, when the image was readable"
    )
    size_bytes: int = Field(ge=0, description="size of the refused file")


class PhotoDeleted(ContractEvent):
    """证书照片删除: a stored photo was deleted; photos pinned by a submission are never deleted."""

    event_type: ClassVar[str] = "PhotoDeleted"
    stream: ClassVar[Stream] = PHOTO_STREAM
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "photo_id": ex.PHOTO_ID,
                    "owner_id": ex.CANDIDATE_ID,
                    "reason_code": "owner_deleted",
                }
            ]
        }
    )

    photo_id: PhotoId = Field(description="the stream id")
    owner_id: CandidateId = Field(description="the candidate who uploaded it")
    reason_code: PhotoDeletion = Field(description="why it was deleted")


CONTRACT = ServiceContract(
    service="media",
    package="media",
    streams=(PHOTO_STREAM,),
    events=(PhotoUploaded, PhotoRejected, PhotoDeleted),
)
