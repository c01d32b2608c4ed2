"""The portal's peer clients against the REAL identity, credential-verify and media apps, in
process (httpx.ASGITransport), each on its own fresh database, with the CHSI and NEEA sandboxes
as real processes and media on the stack's S3. The candidate's token is real: registered and
logged in through identity (captcha solved with identity's test helper); credential-verify and
media verify it with identity's JWKS, as deployed; identity's CandidateRegistered reaches
credential-verify's candidates projection as its Kafka consumer would apply it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from io import BytesIO
from pathlib import Path

import asyncpg
import httpx
import pytest
from PIL import Image
from portal_support import CHSI_CIPHER as CIPHER
from portal_support import (
    LI,
    ZHANG,
    CredentialSetup,
    Person,
    approve_in_chsi_app,
    chsi_neea_sandboxes,
    credential_verify,
    relay_registration,
    rig_identity_settings,
)

from application_service.adapters.peers import (
    CredentialPeer,
    IdentityPeer,
    MediaPeer,
    PeerRefused,
)
from devstack.endpoints import Endpoints
from devstack.testing import create_database, drop_database
from eventkit.db import create_pool
from eventkit.migrations import migrate
from identity_service.bootstrap import Identity, wire
from identity_service.entrypoints.api import attach as identity_attach
from identity_service.entrypoints.api import build_app as identity_app
from identity_service.service_layer.roster import import_roster_file
from identity_service.testing import captcha_answer, sms_code_via
from media_service import bootstrap as media_bootstrap
from media_service.adapters.storage import ObjectStore, StorageConfig
from media_service.entrypoints.api import attach as media_attach
from media_service.entrypoints.api import build_app as media_app
from media_service.settings import MediaSettings
from servicekit.auth import JwksClient, TokenVerifier
from servicekit.identity_client import IdentityClient
from servicekit.signing import IDENTITY_ISSUER

pytestmark = pytest.mark.integration

IDENTITY_MIGRATIONS = (
    Path(__file__).resolve().parents[2] / "identity" / "src" / "identity_service" / "migrations"
)
HEADER = "准考证号,身份证号,姓名,性别,考区,报名区县,专业代码,已合格课程"
PASSWORD = "Zikao#2026"


# --- peers in process ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sandboxes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """The CHSI and NEEA sandboxes as uvicorn processes (restored to their seed at start)."""
    with chsi_neea_sandboxes(tmp_path_factory.mktemp("peer-sandboxes")) as urls:
        yield urls


@pytest.fixture
async def databases(stack: Endpoints) -> AsyncIterator[dict[str, str]]:
    """A fresh database per peer (each service owns its own), dropped afterwards."""
    names = {peer: f"t_{peer[:2]}_{uuid.uuid4().hex[:10]}" for peer in ("credential", "media")}
    dsns = {peer: await create_database(stack, name) for peer, name in names.items()}
    yield dsns
    for name in names.values():
        await drop_database(stack, name)


@pytest.fixture
async def identity(database: str, tmp_path: Path, sms_url: str) -> AsyncIterator[Identity]:
    """Identity wired on a fresh database, its roster holding the sandbox people."""
    await migrate(database, "identity", IDENTITY_MIGRATIONS)
    pool = await create_pool(database, min_size=1, max_size=10)
    rows = [f"{p.ticket},{p.id_number},{p.name},男,140100,140105,580401,00015" for p in (ZHANG, LI)]
    roster = tmp_path / "roster.csv"
    roster.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    await import_roster_file(
        roster, pool=pool, cipher=CIPHER, actor="ops:test", today=date(2026, 11, 28)
    )
    wired = wire(pool, rig_identity_settings(sms_url), CIPHER)
    await wired.keys.ensure_key()
    yield wired
    await pool.close()


@pytest.fixture
async def identity_transport(identity: Identity) -> httpx.ASGITransport:
    app = identity_app()
    identity_attach(app, identity)
    return httpx.ASGITransport(app=app, client=("10.1.2.3", 40000))


@pytest.fixture
async def verifier(identity_transport: httpx.ASGITransport) -> AsyncIterator[TokenVerifier]:
    """Verifies tokens with identity's published JWKS, fetched from the identity app."""
    async with httpx.AsyncClient(transport=identity_transport) as http:
        yield TokenVerifier(
            JwksClient("http://identity/.well-known/jwks.json", http=http),
            issuer=IDENTITY_ISSUER,
        )


@pytest.fixture
async def identity_peer(identity_transport: httpx.ASGITransport) -> AsyncIterator[IdentityPeer]:
    peer = IdentityPeer("http://identity", transport=identity_transport)
    yield peer
    await peer.aclose()


@dataclass
class Candidate:
    person: Person
    candidate_id: uuid.UUID
    token: str


async def solved(identity: Identity, mobile: str = "13812345678") -> dict[str, str]:
    """A fresh captcha of identity's and its answer, and an SMS code sent to `mobile` (read from
    the SMS sandbox), as register() takes them."""
    sms_code = await sms_code_via(identity, mobile)
    issued = await identity.captchas.issue()
    answer = await captcha_answer(identity, issued.captcha_id)
    return {"captcha_id": str(issued.captcha_id), "captcha_answer": answer, "sms_code": sms_code}


async def sign_up(
    peer: IdentityPeer, transport: httpx.ASGITransport, identity: Identity, person: Person
) -> Candidate:
    """Register through identity, then log in with the captcha solved: a real access token."""
    candidate_id = await peer.register(
        person.ticket, person.id_number, person.name, PASSWORD, "13812345678",
        **await solved(identity),
    )  # fmt: skip
    login = IdentityClient("http://identity", transport=transport)
    captcha = await login.captcha()
    answer = await captcha_answer(identity, captcha.captcha_id)
    tokens = await login.candidate_login(person.ticket, PASSWORD, captcha.captcha_id, answer)
    await login.aclose()
    return Candidate(person, candidate_id, tokens.access_token)


@pytest.fixture
async def zhang(
    identity_peer: IdentityPeer, identity_transport: httpx.ASGITransport, identity: Identity
) -> Candidate:
    return await sign_up(identity_peer, identity_transport, identity, ZHANG)


@pytest.fixture
async def credential(
    databases: dict[str, str],
    sandboxes: tuple[str, str],
    verifier: TokenVerifier,
    identity: Identity,
) -> AsyncIterator[tuple[CredentialPeer, asyncpg.Pool]]:
    """credential-verify in process on its own database, wired to the sandboxes; CHSI's
    callback cannot reach it (no socket), so polling completes authorisations."""
    setup = CredentialSetup(databases["credential"], *sandboxes)
    async with credential_verify(setup, verifier) as wired:
        yield wired


@pytest.fixture
async def media(
    databases: dict[str, str], stack: Endpoints, verifier: TokenVerifier
) -> AsyncIterator[MediaPeer]:
    """media in process on its own database and a fresh bucket of the stack's S3."""
    dsn = databases["media"]
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
    wired = media_bootstrap.wire(pool, objects, MediaSettings())
    app = media_app()
    media_attach(app, wired, verifier)
    peer = MediaPeer("http://media", transport=httpx.ASGITransport(app=app))
    yield peer
    await peer.aclose()
    wired.photos.close()
    objects.close()
    await pool.close()


def jpeg(size: tuple[int, int]) -> bytes:
    grey = Image.linear_gradient("L").resize(size)
    noise = Image.effect_noise(size, 40)
    image = Image.merge("RGB", (grey, noise, grey.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    out = BytesIO()
    image.save(out, format="JPEG")
    return out.getvalue()


# --- identity -----------------------------------------------------------------------------------


async def test_identity_registration_profile_contact_and_entries(
    identity_peer: IdentityPeer, zhang: Candidate
) -> None:
    profile = await identity_peer.profile(zhang.token)
    assert (profile.candidate_id, profile.name, profile.admission_ticket_number) == (
        zhang.candidate_id,
        "张建国",
        ZHANG.ticket,
    )
    assert profile.id_number_masked == "1401**********2018"
    assert profile.mobile_masked == "138****5678"
    changed = await identity_peer.change_contact(
        zhang.token, mobile="13900001111", email="zhang@example.cn"
    )
    assert (changed.mobile_masked, changed.email) == ("139****1111", "zhang@example.cn")
    cleared = await identity_peer.change_contact(zhang.token, email="")
    assert cleared.email is None
    entries = await identity_peer.entries(zhang.token)
    assert any(e.is_open for e in entries)
    assert all(e.title and e.message for e in entries)


async def test_identity_refusals_keep_code_message_and_fields(
    identity_peer: IdentityPeer, zhang: Candidate, identity: Identity
) -> None:
    with pytest.raises(PeerRefused) as again:
        await identity_peer.register(
            ZHANG.ticket, ZHANG.id_number, "张建国", PASSWORD, "13812345678",
            **await solved(identity),
        )  # fmt: skip
    assert (again.value.status, again.value.code) == (409, "identity.already_registered")
    assert again.value.message == "该考生已注册，请直接登录"
    with pytest.raises(PeerRefused) as bad_mobile:
        await identity_peer.register(
            LI.ticket, LI.id_number, LI.name, PASSWORD, "12345", **await solved(identity, "12345")
        )
    assert [f.field for f in bad_mobile.value.fields] == ["mobile"]
    with pytest.raises(PeerRefused) as empty:
        await identity_peer.register(
            LI.ticket, LI.id_number, "", PASSWORD, "13812345678", **await solved(identity)
        )
    assert empty.value.code == "request.invalid"
    assert [(f.field, f.code) for f in empty.value.fields] == [("name", "string_too_short")]
    with pytest.raises(PeerRefused) as forged:
        await identity_peer.profile(zhang.token[:-4] + "AAAA")
    assert forged.value.status == 401


# --- credential-verify --------------------------------------------------------------------------


async def test_credential_qr_degrees_code_and_certificate_check(
    credential: tuple[CredentialPeer, asyncpg.Pool], identity: Identity, zhang: Candidate
) -> None:
    peer, cv_pool = credential
    await relay_registration(identity, cv_pool, zhang.candidate_id)
    qr = await peer.start_qr(zhang.token)
    assert qr.pending and qr.method == "qr_code"
    assert qr.qr_png.startswith("data:image/png;base64,")
    assert qr.qr_svg.lstrip().startswith(("<?xml", "<svg"))
    assert (await peer.start_qr(zhang.token)).authorization_id == qr.authorization_id  # reused

    await approve_in_chsi_app(qr.qr_content, ZHANG, "chsi-rec-0001")
    state = await peer.authorization(zhang.token, qr.authorization_id)
    assert (state.status, state.accepted_records, state.refused_records) == ("approved", 1, 0)
    [degree] = await peer.degrees(zhang.token)
    assert (degree.name, degree.level, degree.major_name) == (
        "张建国",
        "junior_college",
        "法律事务",
    )
    assert any(course.get("code") == "00242" for course in degree.transcript)

    redeemed = await peer.redeem_code(zhang.token, "a7k3-q9x2-m5t8-b4rz")
    assert [d.level for d in redeemed.degrees] == ["bachelor"]
    assert len(await peer.degrees(zhang.token)) == 2

    check = await peer.check_certificate(zhang.token, "cet4", "121141400100123", ZHANG.id_number)
    assert (check.verified, check.details["score"]) == (True, 480)
    assert await peer.certificate_check(zhang.token, check.check_id) == check


async def test_credential_refuses_another_persons_id_number(
    credential: tuple[CredentialPeer, asyncpg.Pool], identity: Identity, zhang: Candidate
) -> None:
    peer, cv_pool = credential
    await relay_registration(identity, cv_pool, zhang.candidate_id)
    with pytest.raises(PeerRefused) as caught:
        await peer.check_certificate(zhang.token, "cet6", "112261400200456", LI.id_number)
    assert caught.value.code == "credential.id_number_not_yours"
    assert caught.value.message  # Chinese, from credential-verify
    assert LI.id_number not in str(caught.value)
    with pytest.raises(PeerRefused) as unknown:
        await peer.authorization(zhang.token, uuid.uuid4())
    assert (unknown.value.status, unknown.value.code) == (
        404,
        "credential.authorization_not_found",
    )


# --- media --------------------------------------------------------------------------------------


async def test_media_upload_list_links_content_and_delete(
    media: MediaPeer, zhang: Candidate
) -> None:
    data = jpeg((1200, 900))
    photo = await media.upload(zhang.token, data, "证书.jpg", "image/jpeg")
    assert (photo.owner_id, photo.width, photo.height) == (zhang.candidate_id, 1200, 900)
    assert (photo.size_bytes, photo.format, photo.pinned) == (len(data), "jpeg", False)
    assert [p.photo_id for p in await media.photos(zhang.token)] == [photo.photo_id]
    assert (await media.photo(zhang.token, photo.photo_id)).sha256 == photo.sha256
    links = await media.links(zhang.token, photo.photo_id)
    assert all(url.startswith("http") for url in (links.display, links.thumbnail, links.original))
    original = await media.content(zhang.token, photo.photo_id, "original")
    assert (original.data, original.content_type) == (data, "image/jpeg")  # byte for byte
    await media.delete(zhang.token, photo.photo_id)
    assert await media.photos(zhang.token) == []


async def test_media_refusals_pass_through(media: MediaPeer, zhang: Candidate) -> None:
    with pytest.raises(PeerRefused) as small:
        await media.upload(zhang.token, jpeg((640, 480)), "small.jpg", "image/jpeg")
    assert (small.value.status, small.value.code) == (422, "media.resolution_too_low")
    assert small.value.message
    with pytest.raises(PeerRefused) as gone:
        await media.delete(zhang.token, uuid.uuid4())
    assert (gone.value.status, gone.value.code) == (404, "media.not_found")
