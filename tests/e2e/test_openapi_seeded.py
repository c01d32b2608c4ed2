"""Schemathesis over every service's OpenAPI document, on the running system with its demo data:
signed in as a candidate, a point reviewer, a senior reviewer and ops, and with the real ids a
candidate made (a photo, a certificate check, a QR authorisation, a draft application) put into
the path parameters beside the generated ones. No answer may be a 5xx (but a 503 with
`Retry-After`) or a status the operation's document does not declare, and every error comes in
the shared `ErrorBody` (`servicekit.testing.check_documented_answer`).

The calls change state (ops may open or close windows, a reviewer may claim), so this module runs
after the lane's other tests (`conftest.pytest_collection_modifyitems`). Its candidate is 赵敏,
whom no other test of the lane uses.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from e2e_support import (
    CANDIDATE_PASSWORD,
    POINT,
    ZHAO,
    RunningSystem,
    captcha_answer,
    certificate_jpeg,
    login,
    sms_code,
)
from hypothesis import HealthCheck, given, settings

from devstack.demo import STAFF_PASSWORD
from eventkit.testing import eventually
from servicekit.testing import check_documented_answer

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

ZHAO_PETS = "181140030100234"  # the NEEA sandbox's PETS-3 certificate of 赵敏
SERVICES = ("identity", "application", "credential-verify", "media", "review")
EXAMPLES = 8


@dataclass
class Seeded:
    """Who calls (each an Authorization header) and the real ids the candidate made."""

    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)
    documents: dict[str, dict[str, Any]] = field(default_factory=dict)


async def _seed(system: RunningSystem) -> Seeded:
    seeded = Seeded()
    identity, media = system.url("identity"), system.url("media")
    credential, application = system.url("credential-verify"), system.url("application")
    async with httpx.AsyncClient(timeout=30) as http:
        for service in SERVICES:
            seeded.documents[service] = (
                await http.get(f"{system.url(service)}/openapi.json")
            ).json()
        code = await sms_code(http, system, "13912345678")
        captcha = (await http.get(f"{identity}/api/identity/captcha")).json()
        answer = await captcha_answer(system.dsn("identity"), captcha["captcha_id"])
        created = await http.post(
            f"{identity}/api/identity/candidates",
            json={"ticket_number": ZHAO.ticket, "id_number": ZHAO.id_number, "name": ZHAO.name,
                  "password": CANDIDATE_PASSWORD, "mobile": "13912345678", "sms_code": code,
                  "captcha_id": captcha["captcha_id"], "captcha_answer": answer},
        )  # fmt: skip
        assert created.status_code == 201, created.text
        candidate = await login(system, http, ZHAO.ticket, CANDIDATE_PASSWORD)
        seeded.tokens["candidate"] = candidate
        for role, username in (("reviewer", "xiaodian.reviewer1"),
                               ("senior", "province.senior1"), ("ops", "ops.admin")):  # fmt: skip
            seeded.tokens[role] = await login(system, http, username, STAFF_PASSWORD, staff=True)

        photo = await http.post(
            f"{media}/api/media/photos", headers=candidate,
            files={"file": ("pets.jpg", certificate_jpeg("PETS-3", seed=40), "image/jpeg")},
        )  # fmt: skip
        assert photo.status_code == 201, photo.text
        seeded.ids["photo_id"] = photo.json()["photo_id"]

        async def checked() -> bool:
            done = await http.post(
                f"{credential}/api/credentials/certificate-checks", headers=candidate,
                json={"exam": "pets", "certificate_number": ZHAO_PETS,
                      "id_number": ZHAO.id_number},
            )  # fmt: skip
            if done.status_code == 201:
                seeded.ids["check_id"] = done.json()["check_id"]
            return done.status_code == 201

        await eventually(checked, timeout=90, interval=0.5)
        qr = await http.post(f"{credential}/api/credentials/degree-authorizations",
                             headers=candidate)  # fmt: skip
        assert qr.status_code == 201, qr.text
        seeded.ids["authorization_id"] = qr.json()["authorization_id"]

        windows = (await http.get(f"{application}/api/windows")).json()
        seeded.ids["window_id"] = windows[0]["window_id"]

        async def drafted() -> bool:
            done = await http.post(
                f"{application}/api/applications", headers=candidate,
                json={"window_id": seeded.ids["window_id"], "confirmation_point_id": POINT,
                      "plan": "new", "major_codes": ["050101"]},
            )  # fmt: skip
            if done.status_code == 201:
                seeded.ids["application_id"] = done.json()["application_id"]
            return done.status_code == 201

        await eventually(drafted, timeout=90, interval=0.5)
    return seeded


@pytest.fixture(scope="module")
def seeded(e2e_system: RunningSystem) -> Seeded:
    return asyncio.run(_seed(e2e_system))


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _exercise(case: schemathesis.Case, service: str, system: RunningSystem, seeded: Seeded) -> None:
    """The case as generated, then with the real ids in its path, as every kind of caller."""
    base = system.url(service)
    document = seeded.documents[service]
    variants = [dict(case.path_parameters or {})]
    real = {k: v for k, v in seeded.ids.items() if k in (case.path_parameters or {})}
    if real:
        variants.append({**variants[0], **real})
    for path_parameters in variants:
        case.path_parameters = path_parameters
        for headers in seeded.tokens.values():
            response = case.call(base_url=base, headers=headers, timeout=30)
            check_documented_answer(
                document, case.method, case.path, response.status_code, response.headers,
                response.text,
            )  # fmt: skip


@pytest.mark.parametrize("service", SERVICES)
def test_no_call_gets_a_server_error_or_an_undocumented_status(
    service: str, e2e_system: RunningSystem, seeded: Seeded
) -> None:
    schema = schemathesis.openapi.from_dict(seeded.documents[service])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, service
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def run(case: schemathesis.Case) -> None:
            _exercise(case, service, e2e_system, seeded)

        run()


def test_the_system_is_still_up_after_the_fuzzing(e2e_system: RunningSystem) -> None:
    assert e2e_system.exited() == [], e2e_system.exited()
