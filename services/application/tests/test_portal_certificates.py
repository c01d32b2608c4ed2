"""新增免考课程 through the pages on the real pipeline: the photo goes to media (in process, the
stack's S3), the CET-4 certificate is checked by credential-verify against the NEEA sandbox, both
services' workers relay their events to Kafka and the application worker's evidence projection
receives them while the page waits; then the certificate is added. Also every refusal of the
form, in place."""

from __future__ import annotations

import io
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from portal_support import (
    ZHANG,
    CredentialSetup,
    PortalRig,
    approve_in_chsi_app,
    chsi_neea_sandboxes,
    hidden,
    portal_rig,
    qr_link,
    start_qr,
)

from application_service import bootstrap
from application_service.adapters.peers import MediaPeer
from conftest import EvidenceKit, open_window_in
from devstack.endpoints import Endpoints
from devstack.testing import create_database, drop_database
from eventkit.db import create_pool
from media_service import bootstrap as media_bootstrap
from media_service.adapters.storage import ObjectStore, StorageConfig
from media_service.entrypoints.api import attach as media_attach
from media_service.entrypoints.api import build_app as media_app
from media_service.settings import MediaSettings
from servicekit.testing import run_module

pytestmark = pytest.mark.integration


def jpeg(size: tuple[int, int] = (1600, 1200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (240, 236, 220)).save(out, format="JPEG", quality=85)
    return out.getvalue()


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    with chsi_neea_sandboxes(tmp_path_factory.mktemp("certificate-sandboxes")) as urls:
        yield urls


@pytest.fixture
async def databases(stack: Endpoints) -> AsyncIterator[dict[str, str]]:
    names = {peer: f"t_pc_{peer[:2]}_{uuid.uuid4().hex[:10]}" for peer in ("credential", "media")}
    yield {peer: await create_database(stack, name) for peer, name in names.items()}
    for name in names.values():
        await drop_database(stack, name)


@pytest.fixture
async def portal(
    service: bootstrap.ApplicationService,
    database: str,
    tmp_path: Path,
    sandboxes: tuple[str, str],
    databases: dict[str, str],
    stack: Endpoints,
) -> AsyncIterator[PortalRig]:
    setup = CredentialSetup(databases["credential"], *sandboxes)
    async with portal_rig(service, database, tmp_path, credential=setup) as rig:
        dsn = databases["media"]
        await media_bootstrap.prepare_database(dsn)
        pool = await create_pool(dsn, min_size=1, max_size=5)
        objects = ObjectStore(
            StorageConfig(
                endpoint=stack.s3_endpoint, access_key=stack.s3_access_key,
                secret_key=stack.s3_secret_key, region=stack.s3_region,
                bucket=f"t-{uuid.uuid4().hex[:16]}",
            )
        )  # fmt: skip
        await objects.ensure_bucket()
        wired = media_bootstrap.wire(pool, objects, MediaSettings())
        app = media_app()
        media_attach(app, wired, rig.app.state.token_verifier)
        service.media = MediaPeer("http://media", transport=httpx.ASGITransport(app=app))
        try:
            yield rig
        finally:
            await service.media.aclose()
            wired.photos.close()
            objects.close()
            await pool.close()


@pytest.fixture
def workers(
    database: str, databases: dict[str, str], stack: Endpoints, tmp_path: Path,
    sandboxes: tuple[str, str],
) -> Iterator[None]:  # fmt: skip
    """credential-verify's and media's workers relay their events to Kafka; the application's
    worker keeps its evidence projection from them."""
    base = {**os.environ, **stack.to_env(), "EVENTKIT_KAFKA_BOOTSTRAP": stack.kafka_bootstrap,
            "PROVIDER_URL_CHSI": sandboxes[0], "PROVIDER_URL_NEEA": sandboxes[1]}  # fmt: skip
    plan = {
        "credential_verify_service.entrypoints.worker": databases["credential"],
        "media_service.entrypoints.worker": databases["media"],
        "application_service.entrypoints.worker": database,
    }
    with ExitStack() as processes:
        for module, dsn in plan.items():
            log = tmp_path / f"{module.split('.')[0]}.log"
            processes.enter_context(run_module(module, {**base, "EVENTKIT_PG_DSN": dsn}, log))
        yield


async def drafted(portal: PortalRig, client: httpx.AsyncClient) -> str:
    step1 = (await client.get("/apply")).text
    form = hidden(step1[step1.index('method="post" action="/apply"') :], "/apply")
    created = await client.post(
        "/apply", data={**form, "point": "140105", "plan": "new", "majors": ["030101"]}
    )
    assert created.status_code == 303, created.text
    return created.headers["location"].rsplit("/", 1)[1]


def form_of(html: str, application_id: str) -> dict[str, str]:
    return hidden(html, f"/apply/{application_id}/certificates")


async def test_a_cet4_certificate_is_checked_uploaded_and_added(
    portal: PortalRig, evidence: EvidenceKit, workers: None
) -> None:
    await open_window_in(portal.service)
    async with portal.client() as client:
        candidate_id = await portal.sign_up(client, ZHANG)
        await evidence.registered(candidate_id)
        application_id = await drafted(portal, client)
        step2 = await client.get(f"/apply/{application_id}")
        assert "新增免考课程" in step2.text
        base = f"/apply/{application_id}/certificates/new"
        kinds = await client.get(base)
        assert "全国大学英（日）语等级考试四级及以上证书或成绩单" in kinds.text
        routes = await client.get(base, params={"kind": "cet4_or_above"})
        assert "大学英语四级证书" in routes.text
        details = await client.get(base, params={"kind": "cet4_or_above", "route": "CET4-NEW"})
        assert details.status_code == 200, details.text
        assert (
            'value="030101:13000"' in details.text
            and 'enctype="multipart/form-data"' in details.text
        )
        fields = form_of(details.text, application_id)
        data: dict[str, Any] = {**fields, "certificate_number": "121141400100123",
                                "id_number": ZHANG.id_number, "course": "030101:13000"}  # fmt: skip
        added = await client.post(
            f"/apply/{application_id}/certificates", data=data,
            files={"photo": ("cet4.jpg", jpeg(), "image/jpeg")},
        )  # fmt: skip
        if added.status_code == 409:  # still syncing after the page's wait: press 确定 again
            kept = form_of(added.text, application_id)
            assert kept.get("photo_id") and kept.get("check_id")
            added = await client.post(f"/apply/{application_id}/certificates",
                                      data={**kept, "course": "030101:13000"})  # fmt: skip
        assert added.status_code == 303, added.text
        step2 = await client.get(added.headers["location"])
        assert "证书及免考课程已添加" in step2.text and "13000 英语（专升本）" in step2.text
        assert ZHANG.id_number not in step2.text
        viewed = re.search(r'<a href="([^"]+)"[^>]*>查看照片</a>', step2.text)  # a signed link
        assert viewed, step2.text
        async with httpx.AsyncClient() as browser:
            image = await browser.get(viewed.group(1).replace("&amp;", "&"))
        assert image.status_code == 200 and image.headers["content-type"].startswith("image/")


async def test_the_forms_refusals_stand_in_place(portal: PortalRig, evidence: EvidenceKit) -> None:
    await open_window_in(portal.service)
    async with portal.client() as client:
        candidate_id = await portal.sign_up(client, ZHANG)
        await evidence.registered(candidate_id)
        application_id = await drafted(portal, client)
        base = f"/apply/{application_id}/certificates/new"
        details = await client.get(base, params={"kind": "cet4_or_above", "route": "CET4-NEW"})
        fields = form_of(details.text, application_id)
        action = f"/apply/{application_id}/certificates"
        empty = await client.post(action, data=fields)
        assert empty.status_code == 422
        for message in ("请选择免考课程", "请输入证书编号", "请输入本人身份证号", "请上传证书照片"):
            assert message in empty.text, message
        small = await client.post(
            action,
            data={**fields, "certificate_number": "121141400100123",
                  "id_number": ZHANG.id_number, "course": "030101:13000"},
            files={"photo": ("small.jpg", jpeg((640, 480)), "image/jpeg")},
        )  # fmt: skip
        assert small.status_code == 422 and 'id="photo-error"' in small.text
        kept = form_of(small.text, application_id)
        assert kept.get("check_id") and not kept.get("photo_id")  # checked once, kept
        other = await client.post(
            action,
            data={**fields, "certificate_number": "121141400100123",
                  "id_number": "140106199107221029", "course": "030101:13000"},
            files={"photo": ("cet4.jpg", jpeg(), "image/jpeg")},
        )  # fmt: skip
        assert other.status_code == 422 and 'id="id_number-error"' in other.text
        unknown_kind = await client.get(base, params={"kind": "nonsense"})
        assert unknown_kind.status_code == 200 and "请选择证书" in unknown_kind.text
        forged = await client.post(action, data={**fields, "route": "NOPE"})
        assert forged.status_code == 422
        # a photo past the form's size limit: refused before it is read, as a page, not JSON
        huge = await client.post(
            action,
            data={**fields, "certificate_number": "121141400100123",
                  "id_number": ZHANG.id_number, "course": "030101:13000"},
            files={"photo": ("huge.jpg", b"\xff\xd8\xff" + os.urandom(5 << 20), "image/jpeg")},
        )  # fmt: skip
        assert huge.status_code == 413
        assert huge.headers["content-type"].startswith("text/html")
        assert "证书照片文件应小于 3M" in huge.text and "request.too_large" in huge.text
        assert huge.headers.get("x-request-id") and "content-security-policy" in huge.headers
        stranger = await client.get(f"/apply/{uuid.uuid4()}/certificates/new")
        assert stranger.status_code == 404
        assert re.search(r"<html", stranger.text)


async def test_a_degree_certificate_with_its_transcript_courses(
    portal: PortalRig, evidence: EvidenceKit, workers: None
) -> None:
    """The prior-degree route: the degree verified through the CHSI app, its transcript's
    courses offered against the major's, ticked √ and added."""
    await open_window_in(portal.service)
    async with portal.client() as client:
        candidate_id = await portal.sign_up(client, ZHANG)
        await evidence.registered(candidate_id)
        path = await start_qr(client)
        await approve_in_chsi_app(qr_link((await client.get(path)).text), ZHANG, "chsi-rec-0001")
        assert (await client.get(f"{path}/status")).json()["status"] == "approved"
        step1 = (await client.get("/apply")).text
        form = hidden(step1[step1.index('method="post" action="/apply"') :], "/apply")
        created = await client.post(
            "/apply", data={**form, "point": "140105", "plan": "old", "majors": ["580401"]}
        )
        application_id = created.headers["location"].rsplit("/", 1)[1]
        base = f"/apply/{application_id}/certificates/new"
        details = await client.get(base, params={"kind": "degree"})
        assert details.status_code == 200, details.text
        assert "山西大学 · 法律事务" in details.text
        assert re.search(r'name="source-580401:00242">.*?<option value="民法学" selected>',
                         details.text, re.S)  # fmt: skip
        fields = form_of(details.text, application_id)
        added = await client.post(
            f"/apply/{application_id}/certificates",
            data={**fields, "course": "580401:00242", "source-580401:00242": "民法学"},
            files={"photo": ("transcript.jpg", jpeg(), "image/jpeg")},
        )
        if added.status_code == 409:  # still syncing after the page's wait: press 确定 again
            kept = form_of(added.text, application_id)
            added = await client.post(
                f"/apply/{application_id}/certificates",
                data={**kept, "course": "580401:00242", "source-580401:00242": "民法学"},
            )
        assert added.status_code == 303, added.text
        step2 = await client.get(added.headers["location"])
        assert "00242" in step2.text and "成绩单：民法学" in step2.text
