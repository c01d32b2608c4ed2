"""The media API over HTTP, on a real database and a real bucket: uploads, refusals that store
nothing, access rules, deletion and pinning, and storage faults."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from io import BytesIO
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from PIL import ExifTags, Image

from eventkit.projection import use_schema
from media_service import bootstrap
from media_service.adapters.storage import ObjectStore
from media_service.adapters.usage import USAGE_SCHEMA, PhotoUsage
from media_service.domain.photo_rules import MAX_UPLOAD_BYTES
from media_service.service_layer.photos import Limits
from media_service.settings import MediaSettings

pytestmark = pytest.mark.integration

PHOTOS = "/api/media/photos"
ALICE = uuid.UUID("00000000-0000-4000-8000-00000000a11c")
BOB = uuid.UUID("00000000-0000-4000-8000-000000000b0b")


async def upload(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    data: bytes,
    filename: str = "证书.jpg",
    content_type: str = "image/jpeg",
) -> httpx.Response:
    return await client.post(
        PHOTOS, headers=headers, files={"file": (filename, data, content_type)}
    )


async def state(pool: asyncpg.Pool, objects: ObjectStore) -> dict[str, Any]:
    """Everything media has stored: rows, pending uploads, objects and events by type."""
    events = await pool.fetch(
        "SELECT event_type, payload FROM eventkit.events WHERE stream_type = 'media.photo'"
        " ORDER BY seq"
    )
    return {
        "photos": await pool.fetchval("SELECT count(*) FROM media.photos"),
        "pending": await pool.fetchval("SELECT count(*) FROM media.pending_uploads"),
        "keys": await objects.list_keys(),
        "events": [(e["event_type"], e["payload"]) for e in events],
    }


def assert_nothing_stored(seen: dict[str, Any]) -> None:
    assert seen["photos"] == 0
    assert seen["pending"] == 0
    assert seen["keys"] == []
    assert not [t for t, _ in seen["events"] if t != "PhotoRejected"]


def image_of(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


# --- uploads ----------------------------------------------------------------------------------


async def test_a_jpeg_is_stored_as_original_display_and_thumbnail(
    client: httpx.AsyncClient, tokens: Any, pictures: Any, media_pool: asyncpg.Pool,
    objects: ObjectStore,
) -> None:  # fmt: skip
    alice = tokens.candidate(ALICE)
    data = pictures.jpeg((3000, 2000))
    response = await upload(client, alice, data)
    assert response.status_code == 201, response.text
    body = response.json()
    photo_id = uuid.UUID(body["photo_id"])
    assert body["owner_id"] == str(ALICE)
    assert (body["format"], body["width"], body["height"]) == ("jpeg", 3000, 2000)
    assert body["size_bytes"] == len(data)
    assert body["pinned"] is False
    seen = await state(media_pool, objects)
    assert (seen["photos"], seen["pending"], len(seen["keys"])) == (1, 0, 4)
    [(event_type, payload)] = seen["events"]
    assert event_type == "PhotoUploaded"
    assert payload["photo_id"] == str(photo_id)
    assert payload["owner_id"] == str(ALICE)
    assert (payload["width"], payload["height"], payload["size_bytes"]) == (3000, 2000, len(data))
    assert payload["formats"] == ["jpeg"]
    assert len(payload["sha256"]) == 64

    original = await client.get(body["original_url"], headers=alice)
    assert original.status_code == 200
    assert original.content == data  # the evidence, byte for byte
    display = await client.get(body["display_url"], headers=alice)
    assert display.headers["content-type"] == "image/jpeg"
    assert display.headers["x-content-type-options"] == "nosniff"
    assert "private" in display.headers["cache-control"]
    assert image_of(display.content).size == (2400, 1600)
    thumbnail = await client.get(body["thumbnail_url"], headers=alice)
    assert max(image_of(thumbnail.content).size) == 320

    again = await client.get(
        body["display_url"], headers={**alice, "If-None-Match": display.headers["etag"]}
    )
    assert again.status_code == 304
    listed = await client.get(PHOTOS, headers=alice)
    assert [p["photo_id"] for p in listed.json()["photos"]] == [str(photo_id)]
    shown = await client.get(f"{PHOTOS}/{photo_id}", headers=alice)
    assert shown.json()["sha256"] == payload["sha256"]


async def test_a_png_keeps_its_original_and_gets_jpeg_copies(
    client: httpx.AsyncClient, tokens: Any, pictures: Any, media_pool: asyncpg.Pool,
    objects: ObjectStore,
) -> None:  # fmt: skip
    alice = tokens.candidate(ALICE)
    data = pictures.png((1200, 900))
    response = await upload(client, alice, data, "scan.png", "image/png")
    assert response.status_code == 201, response.text
    original = await client.get(response.json()["original_url"], headers=alice)
    assert original.headers["content-type"] == "image/png"
    assert original.content == data
    [(_, payload)] = (await state(media_pool, objects))["events"]
    assert payload["formats"] == ["png", "jpeg"]


def _cmyk(p: Any) -> bytes:
    return p.encode(p.image((1000, 800), "CMYK"), "JPEG")


def _portrait(p: Any) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    return p.jpeg((1200, 900), exif=exif.tobytes())


def _trailing(p: Any) -> bytes:
    return p.jpeg() + b"TRAILING-JUNK-" * 50


def _gps(p: Any) -> bytes:
    exif = Image.Exif()
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (39.0, 54.0, 27.0)
    exif[ExifTags.Base.Make] = "SecretPhone"
    return p.jpeg(exif=exif.tobytes())


@pytest.mark.parametrize(
    ("build", "size"),
    [
        pytest.param(_cmyk, (1000, 800), id="cmyk-jpeg"),
        pytest.param(_portrait, (900, 1200), id="exif-rotated-portrait"),
        pytest.param(_trailing, (1000, 800), id="trailing-bytes"),
        pytest.param(_gps, (1000, 800), id="gps-metadata"),
        pytest.param(lambda p: p.jpeg((801, 601)), (801, 601), id="801x601"),
        pytest.param(lambda p: p.jpeg((601, 801)), (601, 801), id="601x801"),
    ],
)
async def test_awkward_but_valid_photos_are_accepted_and_shown_right(
    client: httpx.AsyncClient, tokens: Any, pictures: Any,
    build: Callable[[Any], bytes], size: tuple[int, int],
) -> None:  # fmt: skip
    alice = tokens.candidate(ALICE)
    data = build(pictures)
    response = await upload(client, alice, data)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["width"], body["height"]) == size  # upright
    display = (await client.get(body["display_url"], headers=alice)).content
    assert image_of(display).size == size
    assert image_of(display).mode == "RGB"
    # Metadata lives in the segments before the scan; searching the compressed scan for three
    # letters would find them by chance now and then.
    headers = b"".join(jpeg_header_segments(display))
    for marker in (b"Exif", b"GPS", b"SecretPhone"):
        assert marker not in headers
    assert display.endswith(b"\xff\xd9") and b"TRAILING-JUNK-" not in display[-64:]
    original = (await client.get(body["original_url"], headers=alice)).content
    assert original == data


def jpeg_header_segments(data: bytes) -> list[bytes]:
    """The APPn and COM segments of a JPEG (everything before its first scan), with markers."""
    assert data[:2] == b"\xff\xd8"
    segments, at = [], 2
    while at + 4 <= len(data) and data[at] == 0xFF:
        marker = data[at + 1]
        if marker == 0xDA:  # start of scan: the compressed image follows
            break
        length = int.from_bytes(data[at + 2 : at + 4], "big")
        segments.append(data[at : at + 2 + length])
        at += 2 + length
    return segments


def _three_megabytes_and_one(p: Any) -> bytes:
    data = p.jpeg()
    return data + b"\0" * (MAX_UPLOAD_BYTES + 1 - len(data))


BAD_INPUTS = [
    pytest.param(lambda p: b"", 422, "media.empty", "empty_file", id="zero-bytes"),
    pytest.param(
        lambda p: p.jpeg()[:2000], 422, "media.corrupt", "unreadable", id="truncated-jpeg"
    ),
    pytest.param(
        _three_megabytes_and_one, 413, "media.too_large", "file_too_large", id="3MB-plus-1"
    ),
    pytest.param(
        lambda p: p.png_bomb(), 422, "media.image_too_large", "too_many_pixels", id="png-bomb"
    ),
    pytest.param(
        lambda p: p.with_jpeg_size(p.jpeg(), 20_000, 20_000),
        422,
        "media.image_too_large",
        "too_many_pixels",
        id="20000x20000",
    ),
    pytest.param(
        lambda p: p.jpeg((800, 600)),
        422,
        "media.resolution_too_low",
        "resolution_too_low",
        id="exactly-800x600",
    ),
    pytest.param(
        lambda p: p.encode(p.image(), "GIF"),
        415,
        "media.unsupported_type",
        "unsupported_format",
        id="gif-named-jpg",
    ),
    pytest.param(
        lambda p: b'<svg xmlns="http://www.w3.org/2000/svg" width="1000" height="800"/>',
        415,
        "media.unsupported_type",
        "unsupported_format",
        id="svg-named-jpg",
    ),
    pytest.param(
        lambda p: b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        415,
        "media.unsupported_type",
        "unsupported_format",
        id="html-named-jpg",
    ),
    pytest.param(
        lambda p: uuid.uuid4().bytes * 4000,
        415,
        "media.unsupported_type",
        "unsupported_format",
        id="random-bytes",
    ),
]


@pytest.mark.parametrize(("build", "status", "code", "reason"), BAD_INPUTS)
async def test_bad_input_is_refused_with_a_chinese_message_and_nothing_stored(
    client: httpx.AsyncClient, tokens: Any, pictures: Any, media_pool: asyncpg.Pool,
    objects: ObjectStore, build: Callable[[Any], bytes], status: int, code: str, reason: str,
) -> None:  # fmt: skip
    response = await upload(client, tokens.candidate(ALICE), build(pictures), "photo.jpg")
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert any("\u4e00" <= ch <= "\u9fff" for ch in error["message"])
    seen = await state(media_pool, objects)
    assert_nothing_stored(seen)
    [(event_type, payload)] = seen["events"]  # the refusal itself is on the record
    assert event_type == "PhotoRejected"
    assert payload["owner_id"] == str(ALICE)
    assert payload["reason_code"] == reason
    if reason == "resolution_too_low":
        assert (payload["width"], payload["height"]) == (800, 600)


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        pytest.param({"json": {"file": "abc"}}, 400, "media.multipart_invalid", id="json"),
        pytest.param(
            {"content": b"\xff\xd8\xff", "headers": {"Content-Type": "image/jpeg"}},
            400,
            "media.multipart_invalid",
            id="raw-jpeg-body",
        ),
        pytest.param(
            {"files": {"photo": ("a.jpg", b"\xff\xd8\xff", "image/jpeg")}},
            422,
            "media.file_missing",
            id="wrong-field-name",
        ),
        pytest.param({"data": {"file": "x"}}, 400, "media.multipart_invalid", id="urlencoded"),
        pytest.param(
            {"files": {"file": (None, b"plain field")}}, 422, "media.file_missing", id="no-file"
        ),
        pytest.param(
            {"files": {"file": ("", b"", "application/octet-stream")}},
            422,
            "media.file_missing",
            id="empty-file-input",
        ),
        pytest.param(
            {
                "content": b'--xyz\r\nContent-Disposition: form-data; name="file"\r\n\r\nabc',
                "headers": {"Content-Type": "multipart/form-data; boundary=xyz"},
            },
            400,
            "media.multipart_invalid",
            id="truncated-multipart",
        ),
        pytest.param(
            {"content": b"abc", "headers": {"Content-Type": "multipart/form-data"}},
            400,
            "media.multipart_invalid",
            id="no-boundary",
        ),
    ],
)
async def test_a_wrong_multipart_body_is_refused_and_records_nothing(
    client: httpx.AsyncClient, tokens: Any, media_pool: asyncpg.Pool, objects: ObjectStore,
    kwargs: dict[str, Any], status: int, code: str,
) -> None:  # fmt: skip
    headers = {**tokens.candidate(ALICE), **kwargs.pop("headers", {})}
    response = await client.post(PHOTOS, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    seen = await state(media_pool, objects)
    assert_nothing_stored(seen)
    assert seen["events"] == []


async def test_an_oversized_upload_is_refused_without_reading_the_body(
    client: httpx.AsyncClient, tokens: Any, media_pool: asyncpg.Pool, objects: ObjectStore
) -> None:
    pulled = 0
    total = 160  # chunks of 64 KiB: 10 MiB in all

    async def body() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        for _ in range(total):
            pulled += 1
            yield b"\xff" * 65536

    headers = {**tokens.candidate(ALICE), "Content-Type": "multipart/form-data; boundary=b"}
    streamed = await client.post(PHOTOS, headers=headers, content=body())  # chunked, no length
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "media.too_large"
    assert pulled < total // 2
    declared = await client.post(
        PHOTOS,
        headers={**headers, "Content-Length": str(10 * 1024 * 1024)},
        content=b"--b\r\n",
    )
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "media.too_large"
    assert_nothing_stored(await state(media_pool, objects))


async def test_only_a_signed_in_candidate_uploads(
    client: httpx.AsyncClient, tokens: Any, pictures: Any
) -> None:
    anonymous = await upload(client, {}, pictures.jpeg())
    assert anonymous.status_code == 401
    staff = await upload(client, tokens.staff(["reviewer"], ["140100"]), pictures.jpeg())
    assert staff.status_code == 403
    forged = await upload(client, {"Authorization": "Bearer not.a.token"}, pictures.jpeg())
    assert forged.status_code == 401


@pytest.mark.parametrize("limits", [Limits(max_photos_per_owner=2)])
async def test_a_candidate_cannot_hoard_photos(
    client: httpx.AsyncClient, tokens: Any, pictures: Any, limits: Limits
) -> None:
    alice = tokens.candidate(ALICE)
    for _ in range(2):
        assert (await upload(client, alice, pictures.jpeg())).status_code == 201
    third = await upload(client, alice, pictures.jpeg())
    assert third.status_code == 409
    assert third.json()["error"]["code"] == "media.quota_exceeded"
    assert (await upload(client, tokens.candidate(BOB), pictures.jpeg())).status_code == 201


# --- access -----------------------------------------------------------------------------------


async def test_someone_elses_photo_does_not_exist_for_them(
    client: httpx.AsyncClient, tokens: Any, pictures: Any
) -> None:
    alice = tokens.candidate(ALICE)
    photo = (await upload(client, alice, pictures.jpeg())).json()
    bob = tokens.candidate(BOB)
    base = f"{PHOTOS}/{photo['photo_id']}"
    for response in (
        await client.get(base, headers=bob),
        await client.get(f"{base}/display", headers=bob),
        await client.get(f"{base}/original", headers=bob),
        await client.get(f"{base}/links", headers=bob),
        await client.delete(base, headers=bob),
        await client.get(f"{PHOTOS}/{uuid.uuid4()}", headers=alice),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "media.not_found"
    assert (await client.get(PHOTOS, headers=bob)).json()["photos"] == []
    assert (await client.get(base, headers=alice)).status_code == 200
    assert (await client.get(f"{base}/unknown", headers=alice)).status_code == 422
    assert (await client.get(f"{PHOTOS}/not-a-uuid", headers=alice)).status_code == 422


async def test_reviewers_see_a_photo_once_it_is_submitted_to_their_point(
    client: httpx.AsyncClient, tokens: Any, pictures: Any, media_pool: asyncpg.Pool, submit: Any
) -> None:
    alice = tokens.candidate(ALICE)
    photo = (await upload(client, alice, pictures.jpeg())).json()
    base = f"{PHOTOS}/{photo['photo_id']}"
    here = tokens.staff(["reviewer"], ["140105"])
    elsewhere = tokens.staff(["reviewer"], ["140200"])
    province = tokens.staff(["senior_reviewer"])
    ops = tokens.staff(["ops"])
    for viewer in (here, elsewhere, province, ops):
        assert (await client.get(base, headers=viewer)).status_code == 404

    await submit([photo["photo_id"]], point="140105", candidate_id=ALICE)
    for viewer in (here, province):
        assert (await client.get(base, headers=viewer)).json()["pinned"] is True
        display = await client.get(f"{base}/display", headers=viewer)
        assert display.status_code == 200
        assert display.headers["content-type"] == "image/jpeg"
    for viewer in (elsewhere, ops):
        assert (await client.get(base, headers=viewer)).status_code == 404
        assert (await client.get(f"{base}/display", headers=viewer)).status_code == 404
    assert (await client.delete(base, headers=here)).status_code == 403  # staff never delete


async def test_every_staff_view_of_a_photo_is_recorded_in_its_history(
    client: httpx.AsyncClient, tokens: Any, pictures: Any, media_pool: asyncpg.Pool, submit: Any
) -> None:
    alice = tokens.candidate(ALICE)
    photo = (await upload(client, alice, pictures.jpeg())).json()
    base = f"{PHOTOS}/{photo['photo_id']}"
    here = tokens.staff(["reviewer"], ["140105"])
    elsewhere = tokens.staff(["reviewer"], ["140200"])
    province = tokens.staff(["senior_reviewer"])
    await submit([photo["photo_id"]], point="140105", candidate_id=ALICE)

    async def views() -> list[tuple[str, str, str, list[str]]]:
        rows = await media_pool.fetch(
            "SELECT actor_kind, actor_id, payload, correlation_id FROM eventkit.events"
            " WHERE stream_type = 'media.photo_view' AND stream_id = $1 ORDER BY stream_version",
            photo["photo_id"],
        )
        return [
            (r["actor_kind"], r["actor_id"], r["payload"]["given"], r["payload"]["roles"])
            for r in rows
        ]

    # the owner's own views, refused viewers and facts without the image record nothing
    assert (await client.get(f"{base}/display", headers=alice)).status_code == 200
    assert (await client.get(f"{base}/links", headers=alice)).status_code == 200
    assert (await client.get(f"{base}/display", headers=elsewhere)).status_code == 404
    assert (await client.get(base, headers=here)).status_code == 200
    assert await views() == []

    request_id = str(uuid.uuid4())
    got = await client.get(f"{base}/links", headers={**here, "X-Request-ID": request_id})
    assert got.status_code == 200
    assert (await client.get(f"{base}/original", headers=province)).status_code == 200
    # a burst of views of the same photo: each recorded once, none lost to the race
    burst = await asyncio.gather(
        *(client.get(f"{base}/thumbnail", headers=province) for _ in range(8))
    )
    assert [r.status_code for r in burst] == [200] * 8
    recorded = await views()
    reviewer_id, senior_id = subject_of(here), subject_of(province)
    assert recorded[:2] == [
        ("staff", reviewer_id, "links", ["reviewer"]),
        ("staff", senior_id, "original", ["senior_reviewer"]),
    ]
    assert recorded[2:] == [("staff", senior_id, "thumbnail", ["senior_reviewer"])] * 8
    correlation = await media_pool.fetchval(
        "SELECT correlation_id FROM eventkit.events WHERE stream_type = 'media.photo_view'"
        " AND stream_version = 1 AND stream_id = $1",
        photo["photo_id"],
    )
    assert str(correlation) == request_id  # the request that was given the photo
    # the owner may see when staff were given her photo, in which roles, not who they were
    mine = await client.get(f"{PHOTOS}/views", headers=alice)
    assert mine.status_code == 200, mine.text
    seen = mine.json()["views"]
    assert len(seen) == 10 and {v["photo_id"] for v in seen} == {photo["photo_id"]}
    assert seen[-1]["given"] == "links" and seen[-1]["roles"] == ["reviewer"]
    assert [v["viewed_at"] for v in seen] == sorted((v["viewed_at"] for v in seen), reverse=True)
    assert reviewer_id not in mine.text and senior_id not in mine.text
    assert (await client.get(f"{PHOTOS}/views", headers=tokens.candidate(BOB))).json() == {
        "views": []
    }
    assert (await client.get(f"{PHOTOS}/views", headers=here)).status_code == 403
    # never published: no route for the view stream
    from media_service.entrypoints.worker import route

    assert route("media.photo_view") is None


def subject_of(headers: dict[str, str]) -> str:
    token = headers["Authorization"].removeprefix("Bearer ")
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


async def test_citing_a_strangers_photo_grants_reviewers_nothing(
    client: httpx.AsyncClient, tokens: Any, pictures: Any, media_pool: asyncpg.Pool, submit: Any
) -> None:
    photo = (await upload(client, tokens.candidate(ALICE), pictures.jpeg())).json()
    await submit([photo["photo_id"]], candidate_id=BOB, point="140105")
    base = f"{PHOTOS}/{photo['photo_id']}"
    reviewer = tokens.staff(["reviewer"], ["140105"])
    assert (await client.get(base, headers=reviewer)).status_code == 404
    assert (await client.get(base, headers=tokens.staff(["senior_reviewer"]))).status_code == 404


async def test_signed_links_serve_the_copies_from_storage(
    client: httpx.AsyncClient, tokens: Any, pictures: Any
) -> None:
    alice = tokens.candidate(ALICE)
    data = pictures.jpeg()
    photo = (await upload(client, alice, data)).json()
    links = await client.get(f"{PHOTOS}/{photo['photo_id']}/links", headers=alice)
    assert links.status_code == 200
    assert links.headers["cache-control"] == "no-store"
    body = links.json()
    assert datetime.fromisoformat(body["expires_at"]) > datetime.now(UTC)
    async with httpx.AsyncClient() as browser:
        original = await browser.get(body["original"])
        assert original.status_code == 200
        assert original.content == data
        display = await browser.get(body["display"])
        assert image_of(display.content).size == (1000, 800)


def exif_with_gps() -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneCo"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (37.0, 52.0, 12.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (112.0, 33.0, 5.0)
    return exif.tobytes()


async def test_staff_get_a_sanitised_full_copy_and_the_original_only_by_a_recorded_request(
    client: httpx.AsyncClient, tokens: Any, pictures: Any, media_pool: asyncpg.Pool, submit: Any,
    objects: ObjectStore,
) -> None:  # fmt: skip
    """The original (EXIF with GPS, bytes after the image) is never in a staff member's links;
    the sanitised full-resolution copy is, and every copy comes back from storage over real HTTP
    with its exact type, disposition and caching; the API's own streams add nosniff."""
    alice = tokens.candidate(ALICE)
    trailing = b"<html><script>alert(1)</script></html>"
    data = pictures.jpeg((2600, 1800), exif=exif_with_gps()) + trailing
    photo = (await upload(client, alice, data)).json()
    photo_id = photo["photo_id"]
    hex_id = uuid.UUID(photo_id).hex
    await submit([photo_id], point="140105", candidate_id=ALICE)
    reviewer = tokens.staff(["reviewer"], ["140105"])
    base = f"{PHOTOS}/{photo_id}"

    links = (await client.get(f"{base}/links", headers=reviewer)).json()
    assert links["original"] is None
    own = (await client.get(f"{base}/links", headers=alice)).json()
    assert own["original"] is not None
    async with httpx.AsyncClient() as browser:
        full = await browser.get(links["full"])
        assert full.status_code == 200
        assert full.headers["content-type"] == "image/jpeg"
        assert full.headers["content-disposition"] == f'inline; filename="{hex_id}-full.jpg"'
        assert full.headers["cache-control"] == "private, max-age=60"
        image = image_of(full.content)
        assert image.size == (2600, 1800)  # every pixel, re-encoded
        assert not image.getexif() and "exif" not in image.info and "icc_profile" not in image.info
        assert trailing not in full.content and b"PhoneCo" not in full.content
        assert full.content.endswith(b"\xff\xd9")
        for variant in ("display", "thumbnail"):
            copy = await browser.get(links[variant])
            assert copy.headers["content-type"] == "image/jpeg"
            disposition = f'inline; filename="{hex_id}-{variant}.jpg"'
            assert copy.headers["content-disposition"] == disposition
        original = await browser.get(own["original"])
        assert original.content == data  # the owner's own file, byte for byte
        assert original.headers["content-type"] == "image/jpeg"
        disposition = f'attachment; filename="{hex_id}-original.jpg"'
        assert original.headers["content-disposition"] == disposition

    # The objects themselves carry the headers (not only the signed links' overrides).
    for variant, kind in (("original", "attachment"), ("full", "inline")):
        assert await objects.stored_headers(f"photos/{hex_id[:2]}/{hex_id}/{variant}") == {
            "content-type": "image/jpeg",
            "content-disposition": f'{kind}; filename="{hex_id}-{variant}.jpg"',
            "cache-control": "private, max-age=300",
        }

    streamed = await client.get(f"{base}/full", headers=reviewer)
    assert streamed.headers["x-content-type-options"] == "nosniff"
    assert image_of(streamed.content).size == (2600, 1800)
    recorded = await client.get(f"{base}/original", headers=reviewer)  # the explicit request
    assert recorded.content == data
    assert recorded.headers["x-content-type-options"] == "nosniff"
    assert recorded.headers["content-disposition"] == disposition
    given = await media_pool.fetch(
        "SELECT payload->>'given' AS given FROM eventkit.events"
        " WHERE stream_type = 'media.photo_view' AND stream_id = $1 ORDER BY stream_version",
        photo_id,
    )
    assert [r["given"] for r in given] == ["links", "full", "original"]


# --- deletion and pinning ---------------------------------------------------------------------


async def test_the_owner_deletes_an_unsubmitted_photo_and_its_objects_go(
    client: httpx.AsyncClient, tokens: Any, pictures: Any, media_pool: asyncpg.Pool,
    objects: ObjectStore, submit: Any,
) -> None:  # fmt: skip
    alice = tokens.candidate(ALICE)
    photo = (await upload(client, alice, pictures.jpeg())).json()
    base = f"{PHOTOS}/{photo['photo_id']}"
    deleted = await client.delete(base, headers=alice)
    assert deleted.status_code == 204
    assert (await client.get(base, headers=alice)).status_code == 404
    assert (await client.delete(base, headers=alice)).status_code == 404
    seen = await state(media_pool, objects)
    assert seen["keys"] == []
    assert [t for t, _ in seen["events"]] == ["PhotoUploaded", "PhotoDeleted"]
    assert seen["events"][1][1]["reason_code"] == "owner_deleted"
    purged = await media_pool.fetchval("SELECT purged_at IS NOT NULL FROM media.photos")
    assert purged


async def test_a_submitted_photo_is_pinned_for_the_audit(
    client: httpx.AsyncClient, tokens: Any, pictures: Any, media_pool: asyncpg.Pool,
    objects: ObjectStore, submit: Any,
) -> None:  # fmt: skip
    alice = tokens.candidate(ALICE)
    photo = (await upload(client, alice, pictures.jpeg())).json()
    case_number = await submit([photo["photo_id"]], candidate_id=ALICE)
    refused = await client.delete(f"{PHOTOS}/{photo['photo_id']}", headers=alice)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "media.pinned"
    assert case_number in refused.json()["error"]["message"]
    seen = await state(media_pool, objects)
    assert len(seen["keys"]) == 4
    assert [t for t, _ in seen["events"]] == ["PhotoUploaded"]


def certificate_removed(
    application_id: uuid.UUID, certificate_id: uuid.UUID, candidate_id: uuid.UUID
) -> Any:
    from contracts.application import EXEMPTION_STREAM
    from eventkit.envelope import Actor, EventEnvelope

    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type="CertificateRemoved",
        schema_version=1,
        stream_type=EXEMPTION_STREAM.stream_type,
        stream_id=str(application_id),
        stream_version=3,
        occurred_at=datetime.now(UTC),
        correlation_id=uuid.uuid4(),
        actor=Actor(kind="candidate", id=str(candidate_id)),
        payload={"application_id": str(application_id), "certificate_id": str(certificate_id)},
    )


async def test_a_photo_cited_by_a_draft_cannot_be_deleted_until_its_certificate_is_removed(
    client: httpx.AsyncClient, tokens: Any, pictures: Any, media_pool: asyncpg.Pool,
    objects: ObjectStore, submit: Any,
) -> None:  # fmt: skip
    alice = tokens.candidate(ALICE)
    drafted = (await upload(client, alice, pictures.jpeg())).json()
    await submit([drafted["photo_id"]], candidate_id=ALICE, event_type="CertificateAdded")
    refused = await client.delete(f"{PHOTOS}/{drafted['photo_id']}", headers=alice)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "media.in_use"
    assert "删除该证书" in refused.json()["error"]["message"]

    # Cited synchronously, before any event of the application service has reached media.
    cited = (await upload(client, alice, pictures.jpeg())).json()
    application_id, certificate_id = uuid.uuid4(), uuid.uuid4()
    citation = f"{PHOTOS}/{cited['photo_id']}/citations/{application_id}/{certificate_id}"
    assert (await client.put(citation, headers=alice)).status_code == 204
    assert (await client.put(citation, headers=alice)).status_code == 204  # idempotent
    refused = await client.delete(f"{PHOTOS}/{cited['photo_id']}", headers=alice)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "media.in_use"
    # Only the owner cites; another's photo and a deleted one do not exist.
    bob = tokens.candidate(BOB)
    assert (await client.put(citation, headers=bob)).status_code == 404
    staff = tokens.staff(["senior_reviewer"])
    assert (await client.put(citation, headers=staff)).status_code in (401, 403, 404)

    # The certificate removed (as the usage projection learns it): the photo may go.
    async with media_pool.acquire() as conn, conn.transaction():
        await use_schema(conn, USAGE_SCHEMA)
        await PhotoUsage().apply(conn, certificate_removed(application_id, certificate_id, ALICE))
    assert (await client.delete(f"{PHOTOS}/{cited['photo_id']}", headers=alice)).status_code == 204
    gone = await client.put(citation, headers=alice)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "media.not_found"
    seen = await state(media_pool, objects)
    assert len(seen["keys"]) == 4  # the drafted photo's objects, and only those


async def test_a_citation_and_a_deletion_racing_never_both_win(
    client: httpx.AsyncClient, tokens: Any, pictures: Any, media_pool: asyncpg.Pool,
    objects: ObjectStore,
) -> None:  # fmt: skip
    """Citation (the application service, before it records a certificate) and deletion (the
    owner) race on many photos at once: each photo ends either cited and kept, or deleted and
    not cited; never cited and deleted."""
    alice = tokens.candidate(ALICE)
    data = pictures.jpeg()
    photo_ids = [(await upload(client, alice, data)).json()["photo_id"] for _ in range(12)]

    async def race(photo_id: str) -> tuple[int, int]:
        citation = f"{PHOTOS}/{photo_id}/citations/{uuid.uuid4()}/{uuid.uuid4()}"
        cited, deleted = await asyncio.gather(
            client.put(citation, headers=alice),
            client.delete(f"{PHOTOS}/{photo_id}", headers=alice),
        )
        return cited.status_code, deleted.status_code

    outcomes = await asyncio.gather(*(race(p) for p in photo_ids))
    assert set(outcomes) <= {(204, 409), (404, 204)}, outcomes
    for photo_id, (cited, _) in zip(photo_ids, outcomes, strict=True):
        row = await media_pool.fetchrow(
            "SELECT deleted_at IS NOT NULL AS deleted,"
            " EXISTS (SELECT 1 FROM media.citations c WHERE c.photo_id = p.photo_id) AS cited"
            " FROM media.photos p WHERE p.photo_id = $1",
            uuid.UUID(photo_id),
        )
        assert (row["cited"], row["deleted"]) == ((True, False) if cited == 204 else (False, True))
    kept = {k.split("/")[2] for k in await objects.list_keys()}
    assert kept == {uuid.UUID(p).hex for p, (c, _) in zip(photo_ids, outcomes, strict=True)
                    if c == 204}  # fmt: skip


# --- faults -----------------------------------------------------------------------------------


@pytest.fixture
async def media_without_storage(
    media_pool: asyncpg.Pool, make_objects: Callable[..., ObjectStore]
) -> AsyncIterator[bootstrap.Media]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = make_objects(endpoint=f"http://127.0.0.1:{port}", connect_timeout=0.5)
    wired = bootstrap.wire(media_pool, dead, MediaSettings())
    yield wired
    wired.photos.close()


async def test_storage_down_is_a_503_with_retry_after_and_nothing_half_stored(
    media_without_storage: bootstrap.Media, tokens: Any, pictures: Any, media_pool: asyncpg.Pool,
    objects: ObjectStore,
) -> None:  # fmt: skip
    from media_service.entrypoints.api import attach, build_app
    from servicekit.auth import StaticKeys, TokenVerifier
    from servicekit.signing import IDENTITY_ISSUER

    app = build_app()
    keys = StaticKeys({tokens.keypair.kid: tokens.keypair.public_key})
    attach(app, media_without_storage, TokenVerifier(keys, issuer=IDENTITY_ISSUER))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://media") as down:
        response = await upload(down, tokens.candidate(ALICE), pictures.jpeg())
        assert response.status_code == 503
        assert response.headers["retry-after"] == "30"
        assert response.json()["error"]["code"] == "media.storage_unavailable"
        ready = await down.get("/readyz")
        assert ready.status_code == 503
    seen = await state(media_pool, objects)
    assert (seen["photos"], seen["pending"], seen["events"]) == (0, 0, [])


async def test_serving_a_photo_while_storage_is_down_is_a_503_with_retry_after(
    client: httpx.AsyncClient, media_without_storage: bootstrap.Media, tokens: Any,
    pictures: Any,
) -> None:  # fmt: skip
    from media_service.entrypoints.api import attach, build_app
    from servicekit.auth import StaticKeys, TokenVerifier
    from servicekit.signing import IDENTITY_ISSUER

    alice = tokens.candidate(ALICE)
    uploaded = await upload(client, alice, pictures.jpeg())
    assert uploaded.status_code == 201, uploaded.text
    base = f"{PHOTOS}/{uploaded.json()['photo_id']}"
    app = build_app()  # the same database, storage gone (SeaweedFS stopped)
    keys = StaticKeys({tokens.keypair.kid: tokens.keypair.public_key})
    attach(app, media_without_storage, TokenVerifier(keys, issuer=IDENTITY_ISSUER))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://media") as down:
        for variant in ("display", "thumbnail", "full"):
            response = await down.get(f"{base}/{variant}", headers=alice)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "30"
            assert response.json()["error"]["code"] == "media.storage_unavailable"
    assert (await client.get(f"{base}/display", headers=alice)).status_code == 200  # back


class FailingDisplayWrites(ObjectStore):
    """The real bucket, except that writing a display copy fails (storage dying mid-upload)."""

    async def put(
        self, key: str, body: bytes, content_type: str, metadata: Any, **headers: str
    ) -> None:
        if key.endswith("/display"):
            from media_service.domain.errors import StorageUnavailable

            raise StorageUnavailable("injected: display write failed")
        await super().put(key, body, content_type, metadata, **headers)


async def test_a_write_failing_midway_leaves_no_object_and_no_event(
    media_pool: asyncpg.Pool, objects: ObjectStore, pictures: Any
) -> None:
    from media_service.domain.errors import StorageUnavailable

    failing = FailingDisplayWrites(objects.config)
    try:
        wired = bootstrap.wire(media_pool, failing, MediaSettings())
        with pytest.raises(StorageUnavailable):
            await wired.photos.upload(ALICE, pictures.jpeg(), correlation_id=uuid.uuid4())
        wired.photos.close()
    finally:
        failing.close()
    seen = await state(media_pool, objects)
    assert (seen["photos"], seen["pending"], seen["keys"], seen["events"]) == (0, 0, [], [])


async def test_an_event_that_cannot_be_appended_takes_its_objects_with_it(
    media_pool: asyncpg.Pool, objects: ObjectStore, pictures: Any, media: bootstrap.Media
) -> None:
    # A real database failure at the append: a trigger refuses new photo events.
    await media_pool.execute(
        """
        CREATE FUNCTION refuse_photo_events() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected: the event store refuses writes'; END $$;
        CREATE TRIGGER refuse_photo_events BEFORE INSERT ON eventkit.events
            FOR EACH ROW WHEN (NEW.stream_type = 'media.photo')
            EXECUTE FUNCTION refuse_photo_events();
        """
    )
    with pytest.raises(asyncpg.RaiseError, match="injected"):
        await media.photos.upload(ALICE, pictures.jpeg(), correlation_id=uuid.uuid4())
    seen = await state(media_pool, objects)
    assert (seen["photos"], seen["pending"], seen["keys"], seen["events"]) == (0, 0, [], [])


@pytest.mark.parametrize("limits", [Limits(max_uploads_in_flight=0)])
async def test_too_many_uploads_at_once_are_turned_away_politely(
    client: httpx.AsyncClient, tokens: Any, pictures: Any, limits: Limits
) -> None:
    response = await upload(client, tokens.candidate(ALICE), pictures.jpeg())
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "media.busy"
    assert response.headers["retry-after"] == "5"


async def test_decodes_beyond_the_image_workers_wait_briefly_then_get_a_503(
    media_pool: asyncpg.Pool, objects: ObjectStore, tokens: Any, pictures: Any
) -> None:
    """With one decode slot busy, the next upload waits `decode_wait`, then is turned away with
    503 media.busy and Retry-After (nothing recorded); once the slot frees, uploads go on."""
    import threading
    from datetime import timedelta

    from eventkit.store import EventStore
    from media_service.adapters import images
    from media_service.entrypoints.api import attach, build_app
    from media_service.service_layer.photos import Photos
    from servicekit.auth import StaticKeys, TokenVerifier
    from servicekit.signing import IDENTITY_ISSUER

    entered, release = threading.Event(), threading.Event()

    def slow_first(data: bytes) -> images.ProcessedPhoto:
        if not entered.is_set():
            entered.set()
            release.wait(10)
        return images.process(data)

    limits = Limits(process_workers=1, decode_wait=timedelta(seconds=0.3))
    photos = Photos(media_pool, EventStore(media_pool), objects, limits, processor=slow_first)
    app = build_app()
    keys = StaticKeys({tokens.keypair.kid: tokens.keypair.public_key})
    attach(
        app,
        bootstrap.Media(media_pool, objects, photos),
        TokenVerifier(keys, issuer=IDENTITY_ISSUER),
    )
    alice = tokens.candidate(ALICE)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://media") as client:
            first = asyncio.create_task(upload(client, alice, pictures.jpeg()))
            await asyncio.get_running_loop().run_in_executor(None, entered.wait, 5)
            started = asyncio.get_running_loop().time()
            turned_away = await upload(client, alice, pictures.jpeg())
            waited = asyncio.get_running_loop().time() - started
            assert turned_away.status_code == 503, turned_away.text
            assert turned_away.json()["error"]["code"] == "media.busy"
            assert turned_away.headers["retry-after"] == "5"
            assert waited >= 0.3
            release.set()
            assert (await first).status_code == 201
            assert (await upload(client, alice, pictures.jpeg())).status_code == 201
        events = await media_pool.fetch("SELECT event_type FROM eventkit.events")
        assert sorted(e["event_type"] for e in events) == ["PhotoUploaded", "PhotoUploaded"]
    finally:
        release.set()
        photos.close()
