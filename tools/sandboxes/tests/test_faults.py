"""Fault injection, reset and health, on both sandboxes."""

from __future__ import annotations

import json
import time

import httpx
import pytest

pytestmark = pytest.mark.unit

CODE = {"code": "A7K3Q9X2M5T8B4RZ"}
QUERY = {
    "exam": "CET",
    "id_number": "140105199003152018",
    "name": "张建国",
    "certificate_number": "121141400100123",
}


@pytest.fixture(params=["chsi", "neea"])
def target(
    request: pytest.FixtureRequest,
    chsi_client: httpx.AsyncClient,
    neea_client: httpx.AsyncClient,
) -> tuple[httpx.AsyncClient, str, dict[str, str]]:
    if request.param == "chsi":
        return chsi_client, "/api/v1/verification-codes/lookup", CODE
    return neea_client, "/api/v1/certificates/query", QUERY


async def test_no_fault_by_default(target: tuple[httpx.AsyncClient, str, dict[str, str]]) -> None:
    client, path, body = target
    state = await client.get("/_sandbox/faults")
    assert state.json() == {"mode": "none", "count": 0}
    assert (await client.post(path, json=body)).status_code == 200


async def test_error_mode_for_count_calls(
    target: tuple[httpx.AsyncClient, str, dict[str, str]],
) -> None:
    client, path, body = target
    armed = await client.post("/_sandbox/faults", json={"mode": "error", "count": 2})
    assert armed.json() == {"mode": "error", "count": 2}
    for _ in range(2):
        response = await client.post(path, json=body)
        assert response.status_code == 500
        assert response.json()["error"] == "internal"
    assert (await client.post(path, json=body)).status_code == 200
    assert (await client.get("/_sandbox/faults")).json() == {"mode": "none", "count": 0}


async def test_garbage_mode(target: tuple[httpx.AsyncClient, str, dict[str, str]]) -> None:
    client, path, body = target
    await client.post("/_sandbox/faults", json={"mode": "garbage", "count": 1})
    response = await client.post(path, json=body)
    assert response.status_code == 200
    assert response.text.startswith("<html>")
    with pytest.raises(json.JSONDecodeError):
        response.json()
    assert (await client.post(path, json=body)).status_code == 200


async def test_timeout_mode_sleeps_then_answers(
    target: tuple[httpx.AsyncClient, str, dict[str, str]],
) -> None:
    client, path, body = target
    await client.post("/_sandbox/faults", json={"mode": "timeout", "count": 1})
    started = time.monotonic()
    response = await client.post(path, json=body)
    assert time.monotonic() - started >= 0.05
    assert response.status_code == 200
    started = time.monotonic()
    await client.post(path, json=body)
    assert time.monotonic() - started < 0.05


async def test_none_mode_disarms(target: tuple[httpx.AsyncClient, str, dict[str, str]]) -> None:
    client, path, body = target
    await client.post("/_sandbox/faults", json={"mode": "error", "count": 5})
    disarmed = await client.post("/_sandbox/faults", json={"mode": "none", "count": 0})
    assert disarmed.json() == {"mode": "none", "count": 0}
    assert (await client.post(path, json=body)).status_code == 200


async def test_faults_spare_non_api_paths(
    target: tuple[httpx.AsyncClient, str, dict[str, str]],
) -> None:
    client, _, _ = target
    await client.post("/_sandbox/faults", json={"mode": "error", "count": 1})
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/_sandbox/faults")).json() == {"mode": "error", "count": 1}


async def test_unauthorised_call_is_401_and_spends_no_fault(
    target: tuple[httpx.AsyncClient, str, dict[str, str]],
) -> None:
    client, path, body = target
    await client.post("/_sandbox/faults", json={"mode": "error", "count": 1})
    response = await client.post(path, json=body, headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert (await client.post(path, json=body)).status_code == 500


async def test_bad_fault_request(target: tuple[httpx.AsyncClient, str, dict[str, str]]) -> None:
    client, _, _ = target
    response = await client.post("/_sandbox/faults", json={"mode": "explode", "count": 1})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


async def test_reset_clears_faults(target: tuple[httpx.AsyncClient, str, dict[str, str]]) -> None:
    client, path, body = target
    await client.post("/_sandbox/faults", json={"mode": "error", "count": 3})
    assert (await client.post("/_sandbox/reset")).json() == {"status": "ok"}
    assert (await client.get("/_sandbox/faults")).json() == {"mode": "none", "count": 0}
    assert (await client.post(path, json=body)).status_code == 200


async def test_healthz(target: tuple[httpx.AsyncClient, str, dict[str, str]]) -> None:
    client, _, _ = target
    response = await client.get("/healthz", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
