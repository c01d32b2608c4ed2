"""Certificate checks end to end against the NEEA sandbox process: every outcome the exam
authority can give, the checks of the candidate's own ID number, and every refusal."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

CHECKS = "/api/credentials/certificate-checks"

# The NEEA seed (tools/sandboxes/src/sandboxes/data/neea_seed.json).
ZHANG_CET4 = "121141400100123"
ZHANG_NCRE1 = "195214010100318"
LI_CET6 = "112261400200456"
LI_NIT = "140120160300578"
WANG_NCRE2 = "163214010200791"
WANG_NIT = "140120170600812"
ZHAO_PETS3 = "181140030100234"
UNKNOWN_CET = "121141499999999"


async def post_check(
    running: Any, auth: Any, person: Any, exam: str, number: str, id_number: str | None = None
) -> httpx.Response:
    body = {
        "exam": exam,
        "certificate_number": number,
        "id_number": person.id_number if id_number is None else id_number,
    }
    response: httpx.Response = await running.client.post(CHECKS, json=body, headers=auth(person))
    return response


async def checked(running: Any, auth: Any, person: Any, exam: str, number: str) -> dict[str, Any]:
    response = await post_check(running, auth, person, exam, number)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def nothing_recorded(running: Any) -> None:
    assert await running.events() == []
    assert await running.pool.fetchval("SELECT count(*) FROM credential.certificate_checks") == 0


async def test_a_cet4_certificate_is_verified_and_recorded_once(
    running: Any, register: Any, auth: Any, people: Any
) -> None:
    zhang, li = people["zhang"], people["li"]
    await register(zhang)
    await register(li)
    result = await checked(running, auth, zhang, "cet4", ZHANG_CET4)
    assert (result["outcome"], result["reason_code"], result["exam"]) == ("verified", None, "cet4")
    assert result["certificate_number"] == ZHANG_CET4
    assert result["details"]["score"] == 480
    assert result["details"]["level"] == 4

    events = await running.pool.fetch(
        "SELECT event_type, stream_type, stream_id, payload FROM eventkit.events ORDER BY seq"
    )
    [event] = events
    assert (event["event_type"], event["stream_type"]) == (
        "CertificateVerified",
        "credential.certificate",
    )
    assert event["stream_id"] == result["check_id"]
    payload = event["payload"]
    assert (payload["exam"], payload["score"], payload["exam_session"]) == ("cet4", 480, "2012-06")
    assert payload["candidate_id"] == str(zhang.candidate_id)
    assert zhang.id_number not in json.dumps(payload, ensure_ascii=False)
    assert "id_number" not in payload

    again = await running.client.get(f"{CHECKS}/{result['check_id']}", headers=auth(zhang))
    assert again.status_code == 200
    assert again.json() == result
    theirs = await running.client.get(f"{CHECKS}/{result['check_id']}", headers=auth(li))
    assert theirs.status_code == 404
    assert theirs.json()["error"]["code"] == "credential.check_not_found"
    unknown = await running.client.get(f"{CHECKS}/{uuid.uuid4()}", headers=auth(zhang))
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "credential.check_not_found"
    # The ID number typed is never stored.
    row = await running.pool.fetchrow("SELECT * FROM credential.certificate_checks")
    assert zhang.id_number not in json.dumps(dict(row), default=str, ensure_ascii=False)


async def test_cet6_needs_a_cet6_certificate(
    running: Any, register: Any, auth: Any, people: Any
) -> None:
    zhang, li = people["zhang"], people["li"]
    await register(zhang)
    await register(li)
    six = await checked(running, auth, li, "cet6", LI_CET6)
    assert (six["outcome"], six["exam"], six["details"]["score"]) == ("verified", "cet6", 532)
    four = await checked(running, auth, zhang, "cet6", ZHANG_CET4)
    assert (four["outcome"], four["reason_code"]) == ("failed", "below_required_level")
    assert four["details"]["reason"]
    kinds = [r["event_type"] for r in await running.events()]
    assert kinds == ["CertificateVerified", "CertificateVerificationFailed"]
    failed = (await running.events("CertificateVerificationFailed"))[0]["payload"]
    assert (failed["exam"], failed["reason_code"]) == ("cet6", "below_required_level")


async def test_ncre_nit_and_pets_certificates_are_verified(
    running: Any, register: Any, auth: Any, people: Any
) -> None:
    wang, li, zhao = people["wang"], people["li"], people["zhao"]
    for person in (wang, li, zhao):
        await register(person)

    ncre = await checked(running, auth, wang, "ncre", WANG_NCRE2)
    assert (ncre["outcome"], ncre["exam"]) == ("verified", "ncre")
    assert (ncre["details"]["level"], ncre["details"]["subject"]) == (2, "C语言程序设计")

    nit = await checked(running, auth, li, "nit", LI_NIT)
    assert (nit["outcome"], nit["exam"]) == ("verified", "nit")
    assert nit["details"]["subject"] == "管理系统中信息技术的应用"

    module = await checked(running, auth, wang, "nit", WANG_NIT)
    assert (module["outcome"], module["details"]["subject"]) == ("verified", "计算机应用基础")

    # 赵敏's ID number ends in X: typed in lower case and with spaces, it is still hers.
    response = await post_check(
        running, auth, zhao, "pets", ZHAO_PETS3, id_number=" 14010919870611502x "
    )
    assert response.status_code == 201, response.text
    pets = response.json()
    assert (pets["outcome"], pets["exam"], pets["details"]["level"]) == ("verified", "pets", 3)

    payloads = [r["payload"] for r in await running.events("CertificateVerified")]
    assert [(p["exam"], p["level"], p["subject"]) for p in payloads] == [
        ("ncre", 2, "C语言程序设计"),
        ("nit", None, "管理系统中信息技术的应用"),
        ("nit", None, "计算机应用基础"),
        ("pets", 3, None),
    ]


@pytest.mark.parametrize(
    ("exam", "number"),
    [
        ("cet4", UNKNOWN_CET),  # a well-formed number nobody holds
        ("ncre", ZHANG_CET4),  # a known number under the wrong exam
    ],
)
async def test_an_unknown_certificate_fails_as_not_found(
    running: Any, register: Any, auth: Any, people: Any, exam: str, number: str
) -> None:
    zhang = people["zhang"]
    await register(zhang)
    result = await checked(running, auth, zhang, exam, number)
    assert (result["outcome"], result["reason_code"], result["exam"]) == (
        "failed",
        "not_found",
        exam,
    )
    [event] = await running.events()
    assert event["event_type"] == "CertificateVerificationFailed"
    assert (event["payload"]["reason_code"], event["payload"]["exam"]) == ("not_found", exam)


async def test_another_persons_certificate_fails_as_holder_mismatch(
    running: Any, register: Any, auth: Any, people: Any
) -> None:
    zhang = people["zhang"]
    await register(zhang)
    # 王磊's NCRE number, asked with 张建国's own name and ID number.
    result = await checked(running, auth, zhang, "ncre", WANG_NCRE2)
    assert (result["outcome"], result["reason_code"]) == ("failed", "holder_mismatch")
    assert sorted(result["details"]["fields"]) == ["id_number", "name"]
    [event] = await running.events()
    assert event["event_type"] == "CertificateVerificationFailed"
    assert event["payload"]["reason_code"] == "holder_mismatch"
    assert zhang.id_number not in json.dumps(event["payload"], ensure_ascii=False)


@pytest.mark.parametrize("id_number", ["140107199504083017", "not an id number", "1"])
async def test_someone_elses_id_number_is_refused_and_records_nothing(
    running: Any, register: Any, auth: Any, people: Any, id_number: str
) -> None:
    zhang = people["zhang"]
    await register(zhang)
    await register(people["wang"])
    response = await post_check(running, auth, zhang, "ncre", WANG_NCRE2, id_number=id_number)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "credential.id_number_not_yours"
    await nothing_recorded(running)


@pytest.mark.parametrize(
    ("exam", "number"),
    [
        ("cet4", "12114140010012A"),  # a letter
        ("cet4", "ABCDEFGHIJKLMNO"),  # letters only
        ("cet4", "1211414"),  # too short
        ("cet6", "1211414001001230"),  # too long for CET
        ("ncre", "000000000000000"),  # one repeated digit
        ("pets", "12345"),
    ],
)
async def test_a_malformed_certificate_number_is_refused_and_records_nothing(
    running: Any, register: Any, auth: Any, people: Any, exam: str, number: str
) -> None:
    zhang = people["zhang"]
    await register(zhang)
    response = await post_check(running, auth, zhang, exam, number)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "credential.certificate_number_malformed"
    await nothing_recorded(running)


async def test_a_number_typed_with_hyphens_and_full_width_digits_is_accepted(
    running: Any, register: Any, auth: Any, people: Any
) -> None:
    zhang = people["zhang"]
    await register(zhang)
    result = await checked(running, auth, zhang, "cet4", "１２１１４-１４００ １００１２３")
    assert (result["outcome"], result["certificate_number"]) == ("verified", ZHANG_CET4)


@pytest.mark.parametrize(
    "body",
    [
        {"exam": "toefl", "certificate_number": ZHANG_CET4, "id_number": "140105199003152018"},
        {"exam": "CET4", "certificate_number": ZHANG_CET4, "id_number": "140105199003152018"},
        {
            "exam": "cet4",
            "certificate_number": ZHANG_CET4,
            "id_number": "140105199003152018",
            "name": "张建国",
        },
        {"exam": "cet4", "certificate_number": ZHANG_CET4},
        {"exam": "cet4", "certificate_number": "", "id_number": "140105199003152018"},
    ],
)
async def test_an_invalid_request_body_is_refused(
    running: Any, register: Any, auth: Any, people: Any, body: dict[str, Any]
) -> None:
    zhang = people["zhang"]
    await register(zhang)
    response = await running.client.post(CHECKS, json=body, headers=auth(zhang))
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "request.invalid"
    await nothing_recorded(running)


async def test_an_unregistered_candidate_is_asked_to_wait(
    running: Any, auth: Any, people: Any
) -> None:
    response = await post_check(running, auth, people["liu"], "pets", "191140020100467")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "credential.candidate_not_synced"
    assert response.headers["retry-after"] == "5"
    await nothing_recorded(running)


@pytest.mark.parametrize("mode", ["timeout", "error", "garbage"])
async def test_neea_faults_are_a_clear_try_again_later(
    running: Any, register: Any, auth: Any, people: Any, sandboxes: Any, mode: str
) -> None:
    zhang = people["zhang"]
    await register(zhang)
    await sandboxes.fault("neea", mode)
    response = await post_check(running, auth, zhang, "cet4", ZHANG_CET4)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "credential.neea_unavailable"
    assert int(response.headers["retry-after"]) > 0
    await nothing_recorded(running)


async def test_no_token_is_401(running: Any, register: Any, people: Any) -> None:
    await register(people["zhang"])
    body = {"exam": "cet4", "certificate_number": ZHANG_CET4, "id_number": ZHANG_CET4}
    assert (await running.client.post(CHECKS, json=body)).status_code == 401
    assert (await running.client.get(f"{CHECKS}/{uuid.uuid4()}")).status_code == 401
    bad = {"Authorization": "Bearer not-a-token"}
    assert (await running.client.post(CHECKS, json=body, headers=bad)).status_code == 401
    await nothing_recorded(running)
