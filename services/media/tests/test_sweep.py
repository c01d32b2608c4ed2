"""The sweeps on a real database and bucket: orphaned uploads, unused photos, unpurged objects."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from devstack.endpoints import Endpoints
from media_service import bootstrap
from media_service.adapters.storage import ObjectStore, Variant, all_keys, object_key
from media_service.domain.access import Viewer
from media_service.entrypoints import cli
from media_service.settings import MediaSettings

pytestmark = pytest.mark.integration

ALICE = uuid.UUID("00000000-0000-4000-8000-00000000a11c")


async def age(pool: asyncpg.Pool, photo_id: uuid.UUID, days: int) -> None:
    await pool.execute(
        "UPDATE media.photos SET uploaded_at = now() - make_interval(days => $2)"
        " WHERE photo_id = $1",
        photo_id,
        days,
    )


async def orphan(pool: asyncpg.Pool, objects: ObjectStore, minutes: int) -> uuid.UUID:
    """An upload that wrote its objects and died before its event, `minutes` ago."""
    photo_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO media.pending_uploads (photo_id, owner_id, started_at)"
        " VALUES ($1, $2, now() - make_interval(mins => $3))",
        photo_id,
        ALICE,
        minutes,
    )
    for key in all_keys(photo_id):
        await objects.put(key, b"\xff\xd8\xff-orphan", "image/jpeg", {})
    return photo_id


async def test_orphaned_uploads_are_removed_once_old_enough(
    media: bootstrap.Media, media_pool: asyncpg.Pool, objects: ObjectStore
) -> None:
    old = await orphan(media_pool, objects, minutes=120)
    recent = await orphan(media_pool, objects, minutes=1)  # may still be uploading
    report = await media.photos.sweep()
    assert report.orphans_removed == 1
    keys = set(await objects.list_keys())
    assert keys == set(all_keys(recent))
    pending = await media_pool.fetch("SELECT photo_id FROM media.pending_uploads")
    assert [r["photo_id"] for r in pending] == [recent]
    assert old not in {r["photo_id"] for r in pending}
    assert (await media.photos.sweep()).total == 0  # nothing left to do


async def test_unused_photos_expire_but_cited_ones_stay(
    media: bootstrap.Media, media_pool: asyncpg.Pool, objects: ObjectStore, pictures: Any,
    submit: Any,
) -> None:  # fmt: skip
    photos = media.photos
    unused = await photos.upload(ALICE, pictures.jpeg(), correlation_id=uuid.uuid4())
    pinned = await photos.upload(ALICE, pictures.jpeg(), correlation_id=uuid.uuid4())
    drafted = await photos.upload(ALICE, pictures.jpeg(), correlation_id=uuid.uuid4())
    fresh = await photos.upload(ALICE, pictures.jpeg(), correlation_id=uuid.uuid4())
    # cited through the API: the application service's event has not reached media yet
    cited = await photos.upload(ALICE, pictures.jpeg(), correlation_id=uuid.uuid4())
    owner = Viewer(account_id=str(ALICE), is_candidate=True)
    await photos.cite(owner, cited.photo_id, uuid.uuid4(), uuid.uuid4())
    await submit([str(pinned.photo_id)], candidate_id=ALICE)
    await submit([str(drafted.photo_id)], candidate_id=ALICE, event_type="CertificateAdded")
    for photo in (unused, pinned, drafted, cited):
        await age(media_pool, photo.photo_id, days=31)

    report = await photos.sweep()
    assert (report.unused_deleted, report.purged, report.failures) == (1, 1, 0)
    live = {p.photo_id for p in await photos.owned(ALICE)}
    assert live == {pinned.photo_id, drafted.photo_id, fresh.photo_id, cited.photo_id}
    assert not set(all_keys(unused.photo_id)) & set(await objects.list_keys())
    event = await media_pool.fetchrow(
        "SELECT payload, actor_kind, actor_id FROM eventkit.events"
        " WHERE stream_id = $1 AND event_type = 'PhotoDeleted'",
        str(unused.photo_id),
    )
    assert event["payload"]["reason_code"] == "unused_expired"
    assert (event["actor_kind"], event["actor_id"]) == ("system", "media-sweeper")


def dead_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_a_deletion_whose_objects_could_not_go_is_purged_later(
    media: bootstrap.Media, media_pool: asyncpg.Pool, objects: ObjectStore, pictures: Any,
    make_objects: Callable[..., ObjectStore],
) -> None:  # fmt: skip
    photo = await media.photos.upload(ALICE, pictures.jpeg(), correlation_id=uuid.uuid4())
    dead = make_objects(bucket=objects.bucket, endpoint=dead_endpoint(), connect_timeout=0.3)
    cut_off = bootstrap.wire(media_pool, dead, MediaSettings())
    try:
        owner = Viewer(account_id=str(ALICE), is_candidate=True)
        await cut_off.photos.delete(owner, photo.photo_id)  # recorded; the objects stay for now
    finally:
        cut_off.photos.close()
    assert await objects.exists(object_key(photo.photo_id, Variant.ORIGINAL))
    assert await media.photos.owned(ALICE) == []
    report = await media.photos.sweep()
    assert (report.purged, report.failures) == (1, 0)
    assert await objects.list_keys() == []


async def test_the_sweep_command_reports_what_it_did(
    media: bootstrap.Media, media_pool: asyncpg.Pool, objects: ObjectStore, database: str,
    stack: Endpoints, pictures: Any, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    photo = await media.photos.upload(ALICE, pictures.jpeg(), correlation_id=uuid.uuid4())
    await age(media_pool, photo.photo_id, days=3)
    await orphan(media_pool, objects, minutes=5)
    for key, value in {
        "MEDIA_PG_DSN": database,
        "MEDIA_BUCKET": objects.bucket,
        **stack.to_env(),
    }.items():
        monkeypatch.setenv(key, value)
    assert os.environ["MEDIA_BUCKET"] == objects.bucket
    status = await _run_cli(["sweep", "--unused-days", "2", "--orphan-minutes", "1"])
    assert status == cli.EXIT_OK
    out = capsys.readouterr().out
    assert '"orphans_removed": 1' in out
    assert '"unused_deleted": 1' in out
    assert await objects.list_keys() == []


async def _run_cli(argv: list[str]) -> int:
    """Run the synchronous CLI (it owns its event loop) in a thread."""
    import asyncio

    return await asyncio.to_thread(cli.main, argv)
