"""Fixtures of the media tests: a fresh database, a fresh bucket on the stack's S3, signed
tokens for candidates and reviewers, the wired service and an HTTP client on its app, and
pictures made with Pillow."""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO

import asyncpg
import httpx
import pytest
from PIL import Image

from contracts.application import EXEMPTION_STREAM, ApplicationSubmitted, CertificateAdded
from devstack.endpoints import Endpoints
from eventkit.db import create_pool
from eventkit.envelope import Actor, EventEnvelope
from eventkit.projection import use_schema
from media_service import bootstrap
from media_service.adapters.storage import ObjectStore, StorageConfig
from media_service.adapters.usage import USAGE_SCHEMA, PhotoUsage
from media_service.entrypoints.api import attach, build_app
from media_service.service_layer.photos import Limits
from media_service.settings import MediaSettings
from servicekit.auth import StaticKeys, TokenVerifier
from servicekit.signing import IDENTITY_ISSUER, Ed25519KeyPair, issue_token

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def application_event(
    event_type: str,
    photo_ids: list[str],
    *,
    candidate_id: uuid.UUID,
    point: str = "140105",
    application_id: uuid.UUID | None = None,
) -> EventEnvelope:
    """An application-service event citing photos (ApplicationSubmitted or CertificateAdded)."""
    application_id = application_id or uuid.uuid4()
    certificate = {
        "certificate_id": str(uuid.uuid4()),
        "kind": "cet4_or_above",
        "route_id": "CET4",
        "certificate_check_ref": str(uuid.uuid4()),
        "photo_ids": photo_ids,
        "courses": [{"course_code": "00012", "course_name": "英语(一)", "major_code": "580401"}],
    }
    if event_type == "CertificateAdded":
        payload = CertificateAdded.model_validate(
            {"application_id": str(application_id), "certificate": certificate}
        ).model_dump(mode="json")
    else:
        example = ApplicationSubmitted.model_json_schema()["examples"][0]
        payload = ApplicationSubmitted.model_validate(
            {
                **example,
                "application_id": str(application_id),
                "case_number": f"MK2026{uuid.uuid4().int % 10**6:06d}",
                "candidate_id": str(candidate_id),
                "confirmation_point_id": point,
                "certificates": [certificate],
                "course_codes": ["00012"],
                "photo_ids": photo_ids,
            }
        ).model_dump(mode="json")
    return EventEnvelope(
        event_id=uuid.uuid4(),
        event_type=event_type,
        schema_version=1,
        stream_type=EXEMPTION_STREAM.stream_type,
        stream_id=str(application_id),
        stream_version=2,
        occurred_at=datetime.now(UTC),
        correlation_id=uuid.uuid4(),
        actor=Actor(kind="candidate", id=str(candidate_id)),
        payload=payload,
    )


async def apply_usage(pool: asyncpg.Pool, envelope: EventEnvelope) -> None:
    """Apply one event to the usage projection, as its Kafka runner does."""
    async with pool.acquire() as conn, conn.transaction():
        await use_schema(conn, USAGE_SCHEMA)
        await PhotoUsage().apply(conn, envelope)


class Pictures:
    """Test images made here with Pillow, and a few hand-built hostile files."""

    @staticmethod
    def image(size: tuple[int, int] = (1000, 800), mode: str = "RGB") -> Image.Image:
        """A photographic-ish image: a gradient with noise, so JPEG cannot shrink it to nothing."""
        grey = Image.linear_gradient("L").resize(size)
        noise = Image.effect_noise(size, 40)
        rgb = Image.merge("RGB", (grey, noise, grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
        return rgb if mode == "RGB" else rgb.convert(mode)

    @staticmethod
    def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
        out = BytesIO()
        image.save(out, format=fmt, **params)
        return out.getvalue()

    def jpeg(self, size: tuple[int, int] = (1000, 800), **params: object) -> bytes:
        return self.encode(self.image(size), "JPEG", **params)

    def png(self, size: tuple[int, int] = (1000, 800)) -> bytes:
        return self.encode(self.image(size), "PNG")

    @staticmethod
    def png_bomb(width: int = 60_000, height: int = 60_000) -> bytes:
        """A tiny 1-bit PNG declaring billions of pixels."""

        def chunk(kind: bytes, data: bytes) -> bytes:
            crc = struct.pack(">I", zlib.crc32(kind + data))
            return struct.pack(">I", len(data)) + kind + data + crc

        ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
        compressor = zlib.compressobj(9)
        row = bytes(1 + (width + 7) // 8)
        idat = b"".join(compressor.compress(row) for _ in range(64)) + compressor.flush()
        return PNG_MAGIC + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")

    @staticmethod
    def with_jpeg_size(data: bytes, width: int, height: int) -> bytes:
        """The JPEG with its SOF0 header patched to declare another size."""
        sof = data.index(b"\xff\xc0")
        return data[: sof + 5] + struct.pack(">HH", height, width) + data[sof + 9 :]


@pytest.fixture(scope="session")
def pictures() -> Pictures:
    return Pictures()


@dataclass(frozen=True)
class Tokens:
    """Bearer tokens signed by a test key the app trusts."""

    keypair: Ed25519KeyPair

    def candidate(self, candidate_id: uuid.UUID) -> dict[str, str]:
        token = issue_token(
            self.keypair,
            subject=str(candidate_id),
            kind="candidate",
            roles=["candidate"],
            issuer=IDENTITY_ISSUER,
            ttl=timedelta(minutes=10),
        )
        return {"Authorization": f"Bearer {token}"}

    def staff(self, roles: list[str], points: list[str] = ()) -> dict[str, str]:  # type: ignore[assignment]
        token = issue_token(
            self.keypair,
            subject=str(uuid.uuid4()),
            kind="staff",
            roles=roles,
            issuer=IDENTITY_ISSUER,
            ttl=timedelta(minutes=10),
            confirmation_points=points,
        )
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def tokens() -> Tokens:
    return Tokens(Ed25519KeyPair.generate("media-test"))


@pytest.fixture
async def media_pool(database: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database with media's schema and its usage projection."""
    await bootstrap.prepare_database(database)
    pool = await create_pool(database, min_size=1, max_size=20)
    yield pool
    await pool.close()


def storage_config(stack: Endpoints, bucket: str, **overrides: object) -> StorageConfig:
    settings = dict(
        endpoint=stack.s3_endpoint,
        access_key=stack.s3_access_key,
        secret_key=stack.s3_secret_key,
        region=stack.s3_region,
        bucket=bucket,
    )
    settings.update(overrides)
    return StorageConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def make_objects(stack: Endpoints) -> Iterator[Callable[..., ObjectStore]]:
    """Build ObjectStores on the stack's S3 (a fresh bucket unless told); closed afterwards."""
    made: list[ObjectStore] = []

    def make(bucket: str | None = None, **overrides: object) -> ObjectStore:
        store = ObjectStore(
            storage_config(stack, bucket or f"t-{uuid.uuid4().hex[:16]}", **overrides)
        )
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
async def objects(make_objects: Callable[..., ObjectStore]) -> ObjectStore:
    """An ObjectStore on a fresh bucket of the stack's S3."""
    store = make_objects()
    await store.ensure_bucket()
    return store


@pytest.fixture
def limits() -> Limits:
    return Limits()


@pytest.fixture
async def media(
    media_pool: asyncpg.Pool, objects: ObjectStore, limits: Limits
) -> AsyncIterator[bootstrap.Media]:
    """The wired service on the fresh database and bucket (the pool is the fixture's to close)."""
    wired = bootstrap.wire(media_pool, objects, MediaSettings())
    wired.photos.limits = limits
    yield wired
    wired.photos.close()


@pytest.fixture
async def client(media: bootstrap.Media, tokens: Tokens) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the media app wired to `media`, trusting the test key."""
    app = build_app()
    verifier = TokenVerifier(
        StaticKeys({tokens.keypair.kid: tokens.keypair.public_key}), issuer=IDENTITY_ISSUER
    )
    attach(app, media, verifier)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://media") as c:
        yield c


Submit = Callable[..., Awaitable[str]]


@pytest.fixture
def submit(media_pool: asyncpg.Pool) -> Submit:
    """Cite photos from an application event applied to the usage projection; the case number."""

    async def cite(
        photo_ids: list[str],
        *,
        candidate_id: uuid.UUID,
        point: str = "140105",
        event_type: str = "ApplicationSubmitted",
    ) -> str:
        envelope = application_event(event_type, photo_ids, candidate_id=candidate_id, point=point)
        await apply_usage(media_pool, envelope)
        return str(envelope.payload.get("case_number", ""))

    return cite


@pytest.fixture(scope="session")
def app_events() -> Callable[..., EventEnvelope]:
    """Build application-service events citing photos (see `application_event`)."""
    return application_event
