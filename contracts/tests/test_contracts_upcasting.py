"""A new version of an event: old envelopes are upcast on read, and compat insists on it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import Field

from contracts.base import ContractEvent, ServiceContract, Sha256Hex, Stream, event_examples
from contracts.evolution import check_evolution, load_baseline, read_on_disk
from contracts.media import PHOTO_STREAM, PhotoDeleted, PhotoFormat, PhotoRejected, PhotoUploaded
from contracts.registry import SERVICES, build_registry
from contracts.schema_gen import current_schemas, event_schema, event_schema_path, write_generated
from eventkit.envelope import Actor, EventEnvelope
from eventkit.registry import EventRegistry, UnknownEventType

pytestmark = pytest.mark.unit


class PhotoUploadedV2(ContractEvent):
    """证书照片上传, v2: the original's format is separate from the stored renditions."""

    event_type: ClassVar[str] = "PhotoUploaded"
    schema_version: ClassVar[int] = 2
    stream: ClassVar[Stream] = PHOTO_STREAM

    photo_id: uuid.UUID = Field(description="the stream id")
    owner_id: uuid.UUID = Field(description="the uploader")
    width: int = Field(gt=0, description="pixels")
    height: int = Field(gt=0, description="pixels")
    size_bytes: int = Field(gt=0, description="bytes")
    sha256: Sha256Hex = Field(description="hex digest")
    original_format: PhotoFormat = Field(description="the uploaded file's format")
    renditions: list[PhotoFormat] = Field(description="formats derived from it")


def photo_uploaded_v1_to_v2(payload: dict[str, Any]) -> dict[str, Any]:
    """v1 listed the original's format first in `formats`."""
    upgraded = {k: v for k, v in payload.items() if k != "formats"}
    original, *renditions = payload["formats"]
    return {**upgraded, "original_format": original, "renditions": renditions}


def broken_upcaster(payload: dict[str, Any]) -> dict[str, Any]:
    """Forgets the new required fields."""
    return {k: v for k, v in payload.items() if k != "formats"}


def media_v2(upcasters: dict[tuple[str, int], Any]) -> ServiceContract:
    return ServiceContract(
        service="media",
        package="media",
        streams=(PHOTO_STREAM,),
        events=(PhotoUploadedV2, PhotoRejected, PhotoDeleted),
        upcasters=upcasters,
    )


def with_media(media: ServiceContract) -> EventRegistry:
    return build_registry([s for s in SERVICES if s.service != "media"] + [media])


def v1_envelope() -> EventEnvelope:
    payload = event_examples(PhotoUploaded)[0]
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type="PhotoUploaded",
        schema_version=1,
        stream_type=PHOTO_STREAM.stream_type,
        stream_id=payload["photo_id"],
        stream_version=1,
        occurred_at=datetime(2025, 3, 1, tzinfo=UTC),
        correlation_id=uuid.uuid4(),
        actor=Actor(kind="candidate", id=payload["owner_id"]),
        payload=payload,
    )


def test_a_v1_envelope_decodes_as_the_v2_model() -> None:
    registry = with_media(media_v2({("PhotoUploaded", 1): photo_uploaded_v1_to_v2}))
    stored = EventEnvelope.from_json_bytes(v1_envelope().to_json_bytes())
    decoded = registry.decode(stored)
    assert isinstance(decoded, PhotoUploadedV2)
    assert decoded.original_format is PhotoFormat.JPEG
    assert decoded.renditions == [PhotoFormat.WEBP]


def test_without_an_upcaster_a_v1_envelope_is_refused() -> None:
    registry = with_media(media_v2({}))
    with pytest.raises(UnknownEventType, match="no upcaster"):
        registry.decode(v1_envelope())


def evolve(tmp_path: Path, upcasters: dict[tuple[str, int], Any]) -> list[str]:
    """Commit today's schemas as the baseline, then move PhotoUploaded to v2."""
    write_generated(tmp_path)
    _, baseline = load_baseline(tmp_path, str(tmp_path))
    media = media_v2(upcasters)
    current = {
        path: schema
        for path, schema in current_schemas().items()
        if path != "schemas/media/PhotoUploaded.v1.json"
    }
    current[event_schema_path(media, PhotoUploadedV2)] = event_schema(media, PhotoUploadedV2)
    return check_evolution(baseline, current, read_on_disk(tmp_path), with_media(media))


def test_compat_accepts_a_new_version_with_an_upcaster(tmp_path: Path) -> None:
    assert evolve(tmp_path, {("PhotoUploaded", 1): photo_uploaded_v1_to_v2}) == []


def test_compat_refuses_a_new_version_without_an_upcaster(tmp_path: Path) -> None:
    [problem] = evolve(tmp_path, {})
    assert problem.startswith("PhotoUploaded v1: no upcaster path to v2")


def test_compat_runs_the_upcaster_on_the_committed_example(tmp_path: Path) -> None:
    [problem] = evolve(tmp_path, {("PhotoUploaded", 1): broken_upcaster})
    assert problem.startswith("PhotoUploaded v1: the committed example, upcast to v2, is invalid")


def test_compat_refuses_edits_to_a_past_version(tmp_path: Path) -> None:
    write_generated(tmp_path)
    _, baseline = load_baseline(tmp_path, str(tmp_path))
    (tmp_path / "schemas" / "media" / "PhotoUploaded.v1.json").unlink()
    media = media_v2({("PhotoUploaded", 1): photo_uploaded_v1_to_v2})
    current = dict(current_schemas())
    current[event_schema_path(media, PhotoUploadedV2)] = event_schema(media, PhotoUploadedV2)
    problems = check_evolution(baseline, current, read_on_disk(tmp_path), with_media(media))
    assert problems == [
        "PhotoUploaded v1: schemas/media/PhotoUploaded.v1.json was edited or deleted; "
        "keep past versions"
    ]
