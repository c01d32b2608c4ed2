"""The portal's registration call tells identity whose request it is: the person's address in
X-Forwarded-For (identity throttles registration per address and believes the header from the
portal's pods only). Identity scripted with httpx's MockTransport."""

from __future__ import annotations

import uuid

import httpx
import pytest

from application_service.adapters.peers import IdentityPeer

pytestmark = pytest.mark.unit

CANDIDATE = uuid.UUID("00000000-0000-4000-8000-0000000000c1")


@pytest.mark.parametrize(("client_ip", "header"), [("203.0.113.7", "203.0.113.7"), (None, None)])
async def test_registration_forwards_the_persons_address(
    client_ip: str | None, header: str | None
) -> None:
    seen: list[httpx.Request] = []

    def identity(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"candidate_id": str(CANDIDATE)})

    peer = IdentityPeer("http://identity/", transport=httpx.MockTransport(identity))
    got = await peer.register(
        "010118100001", "140105199003152018", "张建国", "Zikao#2026", "13812345678",
        sms_code="123456", captcha_id=str(uuid.uuid4()), captcha_answer="ACDE",
        client_ip=client_ip,
    )  # fmt: skip
    assert got == CANDIDATE
    assert seen[0].headers.get("x-forwarded-for") == header
    await peer.aclose()
