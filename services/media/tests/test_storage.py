"""The bucket adapter against the stack's real S3 (SeaweedFS)."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from media_service.adapters.storage import ObjectStore, Variant, all_keys, object_key
from media_service.domain.errors import StorageUnavailable

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.unit
def test_keys_spread_by_id_and_name_every_variant() -> None:
    photo_id = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")
    assert object_key(photo_id, Variant.DISPLAY) == (
        "photos/0f/0f8fad5bd9cb469fa16570867728950e/display"
    )
    assert len(set(all_keys(photo_id))) == len(Variant) == 4


async def test_put_get_exists_delete(objects: ObjectStore) -> None:
    key = f"photos/test/{uuid.uuid4().hex}"
    assert await objects.get(key) is None
    assert not await objects.exists(key)
    await objects.put(key, b"\xff\xd8\xffdata", "image/jpeg", {"photo-id": "x"})
    stored = await objects.get(key)
    assert stored is not None
    assert (stored.body, stored.content_type) == (b"\xff\xd8\xffdata", "image/jpeg")
    assert await objects.exists(key)
    assert await objects.list_keys("photos/test/") == [key]
    await objects.delete([key, key + "-never-written"])  # missing keys are fine
    assert not await objects.exists(key)


async def test_ensure_bucket_is_idempotent(objects: ObjectStore) -> None:
    await objects.ensure_bucket()
    await objects.ensure_bucket()
    await objects.check()


async def test_a_signed_url_serves_the_object_then_expires(objects: ObjectStore) -> None:
    key = f"photos/test/{uuid.uuid4().hex}"
    await objects.put(key, b"signed-bytes", "image/jpeg", {})
    url, expires_at = await objects.signed_url(
        key, timedelta(seconds=2), content_type="image/jpeg", disposition='inline; filename="x.jpg"'
    )
    assert "X-Amz-Signature=" in url
    async with httpx.AsyncClient() as http:
        fresh = await http.get(url)
        assert fresh.status_code == 200
        assert fresh.content == b"signed-bytes"
        assert fresh.headers["content-type"] == "image/jpeg"
        assert fresh.headers["content-disposition"] == 'inline; filename="x.jpg"'
        unsigned = await http.get(url.split("?")[0])
        assert unsigned.status_code == 403  # the bucket is private
        other = key[:-1] + ("1" if key.endswith("0") else "0")  # a key that differs
        tampered = await http.get(url.replace(key, other))
        assert tampered.status_code == 403
        await asyncio.sleep(max(0.0, expires_at.timestamp() - time.time()) + 1.5)
        assert (await http.get(url)).status_code == 403


async def test_an_unreachable_endpoint_is_storage_unavailable(
    make_objects: Callable[..., ObjectStore],
) -> None:
    down = make_objects(endpoint=f"http://127.0.0.1:{free_port()}", connect_timeout=0.5)
    started = time.monotonic()
    for call in (
        down.check(),
        down.put("k", b"x", "image/jpeg", {}),
        down.get("k"),
        down.delete(["k"]),
    ):
        with pytest.raises(StorageUnavailable) as caught:
            await call
        assert caught.value.status == 503
        assert caught.value.retry_after
    assert time.monotonic() - started < 20


async def test_wrong_credentials_are_unavailable_storage_not_a_missing_object(
    make_objects: Callable[..., ObjectStore], objects: ObjectStore
) -> None:
    wrong = make_objects(bucket=objects.bucket, secret_key="not-the-secret")
    with pytest.raises(StorageUnavailable):  # not "no such photo": a fault ops must see
        await wrong.get("photos/any")
    with pytest.raises(StorageUnavailable):
        await wrong.check()
