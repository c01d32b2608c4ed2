"""Degree verification end to end against the CHSI sandbox process: QR authorisation with the
signed callback and the polling fallback, verification codes, and every refusal."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from credential_verify_service.adapters.chsi import SIGNATURE_HEADER, sign_callback

pytestmark = pytest.mark.integration

BASE = "/api/credentials"


async def start(running: Any, auth: Any, person: Any) -> dict[str, Any]:
    response = await running.client.post(f"{BASE}/degree-authorizations", headers=auth(person))
    assert response.status_code == 201, response.text
    return dict(response.json())


async def status_of(running: Any, auth: Any, person: Any, authorization_id: str) -> dict[str, Any]:
    response = await running.client.get(
        f"{BASE}/degree-authorizations/{authorization_id}", headers=auth(person)
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_qr_authorisation_is_completed_by_the_signed_callback(
    running: Any, register: Any, auth: Any, people: Any, chsi_app: Any, eventually: Any
) -> None:
    zhang = people["zhang"]
    await register(zhang)
    qr = await start(running, auth, zhang)
    assert qr["status"] == "requested"
    assert qr["qr_png"].startswith("data:image/png;base64,")
    assert qr["qr_svg"].lstrip().startswith(("<?xml", "<svg"))
    again = await start(running, auth, zhang)  # pressed twice: the same live QR code
    assert again["authorization_id"] == qr["authorization_id"]
    page = await chsi_app(qr["qr_content"]).decide(zhang, "approve", ["chsi-rec-0001"])
    assert page.status_code == 200, page.text

    async def recorded() -> bool:
        rows = await running.events("DegreesVerified")
        return bool(rows)

    await eventually(recorded)  # the callback alone, before anyone polls
    state = await status_of(running, auth, zhang, qr["authorization_id"])
    assert (state["status"], state["accepted_records"], state["refused_records"]) == (
        "approved",
        1,
        0,
    )
    listed = (await running.client.get(f"{BASE}/degrees", headers=auth(zhang))).json()["degrees"]
    [degree] = listed
    assert degree["name"] == "张建国"
    assert degree["id_number_masked"] == "1401**********2018"
    assert (degree["level"], degree["major_name"], degree["conclusion"]) == (
        "junior_college",
        "法律事务",
        "毕业",
    )
    assert any(course.get("code") == "00242" for course in degree["transcript"])
    events = [r["event_type"] for r in await running.events()]
    assert events == ["DegreeAuthorizationRequested", "DegreesVerified"]
    fresh = await start(running, auth, zhang)  # once decided, a new one is opened
    assert fresh["authorization_id"] != qr["authorization_id"]
    payload = (await running.events("DegreesVerified"))[0]["payload"]
    assert "140105199003152018" not in json.dumps(payload, ensure_ascii=False)


async def test_polling_completes_an_authorisation_whose_callback_never_came(
    running: Any, register: Any, auth: Any, people: Any, chsi_app: Any
) -> None:
    li = people["li"]
    await register(li)
    running.service.degrees._callback_url = "http://127.0.0.1:9/unreachable"
    qr = await start(running, auth, li)
    await chsi_app(qr["qr_content"]).decide(li, "approve", ["chsi-rec-0003", "chsi-rec-0004"])
    state = await status_of(running, auth, li, qr["authorization_id"])
    assert (state["status"], state["accepted_records"]) == ("approved", 2)
    again = await status_of(running, auth, li, qr["authorization_id"])
    assert again == state
    assert len(await running.events("DegreesVerified")) == 1


async def test_a_denied_authorisation_records_no_degree(
    running: Any, register: Any, auth: Any, people: Any, chsi_app: Any, eventually: Any
) -> None:
    wang = people["wang"]
    await register(wang)
    qr = await start(running, auth, wang)
    await chsi_app(qr["qr_content"]).decide(wang, "deny")

    async def denied() -> bool:
        state = await status_of(running, auth, wang, qr["authorization_id"])
        return bool(state["status"] == "denied")

    await eventually(denied)
    assert (await running.client.get(f"{BASE}/degrees", headers=auth(wang))).json() == {
        "degrees": []
    }
    assert await running.events("DegreesVerified") == []


async def test_a_record_of_another_name_is_not_accepted(
    running: Any, register: Any, auth: Any, people: Any, chsi_app: Any
) -> None:
    zhao = people["zhao"]  # the roster says 赵敏; her CHSI record says 赵小敏
    await register(zhao)
    qr = await start(running, auth, zhao)
    await chsi_app(qr["qr_content"]).decide(zhao, "approve", ["chsi-rec-0006"])
    state = await status_of(running, auth, zhao, qr["authorization_id"])
    assert state["status"] == "approved"
    assert (state["accepted_records"], state["refused_records"]) == (0, 1)
    assert state["refused_fields"] == ["name"]
    assert (await running.client.get(f"{BASE}/degrees", headers=auth(zhao))).json() == {
        "degrees": []
    }


async def test_another_candidates_authorisation_does_not_exist_for_them(
    running: Any, register: Any, auth: Any, people: Any
) -> None:
    zhang, li = people["zhang"], people["li"]
    await register(zhang)
    await register(li)
    qr = await start(running, auth, zhang)
    response = await running.client.get(
        f"{BASE}/degree-authorizations/{qr['authorization_id']}", headers=auth(li)
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "credential.authorization_not_found"
    unknown = await running.client.get(
        f"{BASE}/degree-authorizations/{uuid.uuid4()}", headers=auth(zhang)
    )
    assert unknown.status_code == 404


async def test_an_unregistered_candidate_is_asked_to_wait(
    running: Any, auth: Any, people: Any
) -> None:
    response = await running.client.post(
        f"{BASE}/degree-authorizations", headers=auth(people["liu"])
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "credential.candidate_not_synced"
    assert response.headers["retry-after"] == "5"


async def test_an_approval_after_expiry_is_not_recorded(
    running: Any, register: Any, auth: Any, people: Any, chsi_app: Any
) -> None:
    zhang = people["zhang"]
    await register(zhang)
    qr = await start(running, auth, zhang)
    # Our side considers it lapsed (as if the candidate approved long after the QR expired).
    await running.pool.execute(
        "UPDATE credential.authorizations SET expires_at = now() - interval '10 minutes'"
    )
    await chsi_app(qr["qr_content"]).decide(zhang, "approve", ["chsi-rec-0001"])
    state = await status_of(running, auth, zhang, qr["authorization_id"])
    assert state["status"] == "expired"
    assert await running.events("DegreesVerified") == []
    assert len(await running.events("DegreeAuthorizationExpired")) == 1


def _callback(ticket: str, state: str, status: str = "approved") -> bytes:
    return json.dumps(
        {"ticket": ticket, "state": state, "status": status, "decided_at": "2026-11-28T10:00:00Z"}
    ).encode()


async def test_forged_stale_and_replayed_callbacks_change_nothing(
    running: Any, register: Any, auth: Any, people: Any, chsi_app: Any, eventually: Any
) -> None:
    zhang = people["zhang"]
    await register(zhang)
    qr = await start(running, auth, zhang)
    ticket = await running.pool.fetchval("SELECT ticket FROM credential.authorizations")
    body = _callback(ticket, qr["authorization_id"])
    url = f"{BASE}/chsi/callback"

    forged = sign_callback("not-the-secret", body, int(time.time()))
    response = await running.client.post(url, content=body, headers={SIGNATURE_HEADER: forged})
    assert (response.status_code, response.json()["error"]["code"]) == (
        401,
        "credential.callback_signature_invalid",
    )
    stale = sign_callback("chsi-sandbox-secret", body, int(time.time()) - 3600)
    response = await running.client.post(url, content=body, headers={SIGNATURE_HEADER: stale})
    assert response.json()["error"]["code"] == "credential.callback_stale"
    missing = await running.client.post(url, content=body)
    assert missing.status_code == 400
    garbage = await running.client.post(url, content=b"{}", headers={SIGNATURE_HEADER: "t=1,v1=00"})
    assert garbage.json()["error"]["code"].startswith("credential.callback_")
    assert await running.events("DegreesVerified") == []

    await chsi_app(qr["qr_content"]).decide(zhang, "approve", ["chsi-rec-0001", "chsi-rec-0002"])

    async def recorded() -> bool:
        return bool(await running.events("DegreesVerified"))

    await eventually(recorded)
    valid = sign_callback("chsi-sandbox-secret", body, int(time.time()))
    for _ in range(2):  # a replay, and the same decision told again: recorded once
        response = await running.client.post(url, content=body, headers={SIGNATURE_HEADER: valid})
        assert response.status_code == 200
        assert response.json() == {"result": "duplicate"}
    assert len(await running.events("DegreesVerified")) == 1
    assert await running.pool.fetchval("SELECT count(*) FROM credential.degrees") == 2


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("abc", 422, "credential.verification_code_malformed"),
        ("A7K3Q9X2M5T8B4R", 422, "credential.verification_code_malformed"),
        ("ZZZZZZZZZZZZZZZZ", 404, "credential.verification_code_unknown"),
        ("999999999999", 404, "credential.verification_code_unknown"),
        ("H2N6P4W8C1D5F7JQ", 410, "credential.verification_code_expired"),
    ],
)
async def test_bad_verification_codes_are_refused_and_record_nothing(
    running: Any, register: Any, auth: Any, people: Any, code: str, status: int, error: str
) -> None:
    await register(people["wang"])
    response = await running.client.post(
        f"{BASE}/verification-codes", json={"code": code}, headers=auth(people["wang"])
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == error
    assert await running.events() == []


async def test_a_verification_code_verifies_the_holders_degree(
    running: Any, register: Any, auth: Any, people: Any
) -> None:
    zhang, li = people["zhang"], people["li"]
    await register(zhang)
    await register(li)
    response = await running.client.post(
        f"{BASE}/verification-codes",
        json={"code": "a7k3-q9x2-m5t8-b4rz"},  # typed with hyphens, lower case
        headers=auth(zhang),
    )
    assert response.status_code == 201, response.text
    [degree] = response.json()["degrees"]
    assert (degree["level"], degree["name"]) == ("bachelor", "张建国")
    # 李晓燕's own code works for her; 张建国's code is not hers.
    mine = await running.client.post(
        f"{BASE}/verification-codes", json={"code": "202405318812"}, headers=auth(li)
    )
    assert mine.status_code == 201
    theirs = await running.client.post(
        f"{BASE}/verification-codes", json={"code": "A7K3Q9X2M5T8B4RZ"}, headers=auth(li)
    )
    assert theirs.status_code == 422
    assert theirs.json()["error"]["code"] == "credential.record_holder_mismatch"
    kinds = [r["event_type"] for r in await running.events()]
    assert kinds == ["DegreeAuthorizationRequested", "DegreesVerified"] * 2


@pytest.mark.parametrize("mode", ["timeout", "error", "garbage"])
async def test_chsi_faults_are_a_clear_try_again_later(
    running: Any, register: Any, auth: Any, people: Any, sandboxes: Any, mode: str
) -> None:
    zhang = people["zhang"]
    await register(zhang)
    await sandboxes.fault("chsi", mode)
    for response in (
        await running.client.post(f"{BASE}/degree-authorizations", headers=auth(zhang)),
        await running.client.post(
            f"{BASE}/verification-codes", json={"code": "A7K3Q9X2M5T8B4RZ"}, headers=auth(zhang)
        ),
    ):
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "credential.chsi_unavailable"
        assert int(response.headers["retry-after"]) > 0
    assert await running.events() == []
    assert await running.pool.fetchval("SELECT count(*) FROM credential.authorizations") == 0
