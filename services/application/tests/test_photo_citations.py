"""A certificate's photos are cited at media BEFORE the certificate is recorded (ADR 0015): the
application API on its real database and the REAL media app in process (its own database, a
fresh bucket of the stack's S3), both trusting one test key. No Kafka runs between them, so
media learns nothing from events here: whatever protects the photo is the synchronous citation.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from io import BytesIO
from typing import Any

import httpx
import pytest
from PIL import Image

from application_service import bootstrap
from application_service.adapters.peers import MediaCitations, MediaPeer
from application_service.entrypoints.api import attach, build_app
from devstack.endpoints import Endpoints
from devstack.testing import create_database, drop_database
from eventkit.db import create_pool
from media_service import bootstrap as media_bootstrap
from media_service.adapters.storage import ObjectStore, StorageConfig
from media_service.entrypoints.api import attach as media_attach
from media_service.entrypoints.api import build_app as media_app
from media_service.settings import MediaSettings
from servicekit.auth import StaticKeys, TokenVerifier
from servicekit.signing import IDENTITY_ISSUER, Ed25519KeyPair, issue_token

pytestmark = pytest.mark.integration

BASE = "/api/applications"
PHOTOS = "/api/media/photos"
KEYPAIR = Ed25519KeyPair.generate("citations-test")


def bearer(candidate_id: uuid.UUID) -> dict[str, str]:
    from datetime import timedelta

    token = issue_token(
        KEYPAIR, subject=str(candidate_id), kind="candidate", roles=["candidate"],
        issuer=IDENTITY_ISSUER, ttl=timedelta(minutes=10),
    )  # fmt: skip
    return {"Authorization": f"Bearer {token}"}


def verifier() -> TokenVerifier:
    return TokenVerifier(StaticKeys({KEYPAIR.kid: KEYPAIR.public_key}), issuer=IDENTITY_ISSUER)


def jpeg() -> bytes:
    grey = Image.linear_gradient("L").resize((1000, 800))
    noise = Image.effect_noise((1000, 800), 40)
    out = BytesIO()
    Image.merge("RGB", (grey, noise, grey)).save(out, format="JPEG")
    return out.getvalue()


@dataclass
class Both:
    application: httpx.AsyncClient
    media: httpx.AsyncClient
    service: bootstrap.ApplicationService


@pytest.fixture
async def both(service: bootstrap.ApplicationService, stack: Endpoints) -> AsyncIterator[Both]:
    """The application API whose certificates cite photos at the in-process media app."""
    name = f"t_me_{uuid.uuid4().hex[:10]}"
    dsn = await create_database(stack, name)
    await media_bootstrap.prepare_database(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=10)
    objects = ObjectStore(
        StorageConfig(
            endpoint=stack.s3_endpoint,
            access_key=stack.s3_access_key,
            secret_key=stack.s3_secret_key,
            region=stack.s3_region,
            bucket=f"t-{uuid.uuid4().hex[:16]}",
        )
    )
    await objects.ensure_bucket()
    media = media_bootstrap.wire(pool, objects, MediaSettings())
    m_app = media_app()
    media_attach(m_app, media, verifier())
    m_transport = httpx.ASGITransport(app=m_app)
    peer = MediaPeer("http://media", transport=m_transport)
    wired = bootstrap.wire(service.pool, photo_citations=MediaCitations(peer))
    a_app = build_app()
    attach(a_app, wired, verifier())
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(app=a_app), base_url="http://app") as a,
        httpx.AsyncClient(transport=m_transport, base_url="http://media") as m,
    ):
        yield Both(a, m, wired)
    await peer.aclose()
    media.photos.close()
    objects.close()
    await pool.close()
    await drop_database(stack, name)


async def test_a_photo_cited_by_a_new_certificate_cannot_be_deleted_before_media_hears_of_it(
    both: Both, evidence: Any, open_window: str, facts: Any
) -> None:
    from contracts.media import PhotoFormat, PhotoUploaded

    me = uuid.uuid4()
    headers = bearer(me)
    await evidence.registered(me)

    async def uploaded() -> str:
        """Uploaded at media, and known to the application's evidence (as from Kafka)."""
        answer = await both.media.post(
            PHOTOS, headers=headers, files={"file": ("证书.jpg", jpeg(), "image/jpeg")}
        )
        assert answer.status_code == 201, answer.text
        body = answer.json()
        await facts.apply(
            PhotoUploaded(
                photo_id=body["photo_id"], owner_id=me, width=1000, height=800,
                size_bytes=body["size_bytes"], sha256=body["sha256"], formats=[PhotoFormat.JPEG],
            ),
            body["photo_id"],
        )  # fmt: skip
        return str(body["photo_id"])

    async def certificate(photo_id: str) -> dict[str, Any]:
        return {
            "kind": "cet4_or_above",
            "route_id": "CET4-NEW",
            "certificate_check_ref": await evidence.check(me),
            "photo_ids": [photo_id],
            "courses": [{"course_code": "13124", "major_code": "530605"}],
        }

    draft = await both.application.post(
        BASE,
        json={"window_id": open_window, "confirmation_point_id": "140105", "plan": "new",
              "major_codes": ["530605"]},
        headers=headers,
    )  # fmt: skip
    assert draft.status_code == 201, draft.text
    application_id = draft.json()["application_id"]

    # 1. The certificate is recorded; at once (media has consumed no event) the photo is kept.
    cited = await uploaded()
    added = await both.application.post(
        f"{BASE}/{application_id}/certificates", json=await certificate(cited), headers=headers
    )
    assert added.status_code == 201, added.text
    refused = await both.media.delete(f"{PHOTOS}/{cited}", headers=headers)
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["code"] == "media.in_use"

    # 2. The other order: deleted at media first, while the application still believes it is
    # there (PhotoDeleted has not reached it): the certificate is refused, nothing recorded.
    certificate_id = added.json()["certificates"][0]["certificate_id"]
    removed = await both.application.delete(
        f"{BASE}/{application_id}/certificates/{certificate_id}", headers=headers
    )
    assert removed.status_code == 200, removed.text
    doomed = await uploaded()
    assert (await both.media.delete(f"{PHOTOS}/{doomed}", headers=headers)).status_code == 204
    version = await both.service.pool.fetchval(
        "SELECT version FROM application.applications WHERE application_id = $1",
        uuid.UUID(application_id),
    )
    late = await both.application.post(
        f"{BASE}/{application_id}/certificates", json=await certificate(doomed), headers=headers
    )
    assert late.status_code == 422, late.text
    assert late.json()["error"]["code"] == "application.photo_deleted"
    assert "已删除" in late.json()["error"]["message"]
    assert version == await both.service.pool.fetchval(
        "SELECT version FROM application.applications WHERE application_id = $1",
        uuid.UUID(application_id),
    )
