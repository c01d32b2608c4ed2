"""NEEA sandbox: verified, mismatch and not_found."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.unit

PATH = "/api/v1/certificates/query"
WANG = {"id_number": "140107199504083017", "name": "王磊"}


async def test_requires_secret(neea_client: httpx.AsyncClient) -> None:
    response = await neea_client.post(PATH, json={}, headers={"Authorization": "Bearer x"})
    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized", "message": "missing or wrong client secret"}


async def test_verified_ncre_level_2_c(neea_client: httpx.AsyncClient) -> None:
    response = await neea_client.post(
        PATH, json={"exam": "NCRE", "certificate_number": "163214010200791", **WANG}
    )
    assert response.status_code == 200
    assert response.json() == {
        "result": "verified",
        "certificate": {
            "exam": "NCRE",
            "certificate_number": "163214010200791",
            "name": "王磊",
            "level": 2,
            "subject": "C语言程序设计",
            "score": None,
            "exam_session": "2016年3月",
            "issued_on": "2016-05-20",
        },
    }


async def test_verified_cet4_with_score(neea_client: httpx.AsyncClient) -> None:
    response = await neea_client.post(
        PATH,
        json={
            "exam": "CET",
            "certificate_number": "121141400100123",
            "id_number": "140105199003152018",
            "name": "张建国",
        },
    )
    certificate = response.json()["certificate"]
    assert certificate["level"] == 4
    assert certificate["score"] >= 425
    assert "id_number" not in certificate


async def test_id_number_with_x_matches_case_insensitively(neea_client: httpx.AsyncClient) -> None:
    response = await neea_client.post(
        PATH,
        json={
            "exam": "PETS",
            "certificate_number": "181140030100234",
            "id_number": "14010919870611502x",
            "name": "赵敏",
        },
    )
    assert response.json()["result"] == "verified"


@pytest.mark.parametrize(
    ("override", "fields"),
    [
        ({"name": "王雷"}, ["name"]),
        ({"id_number": "140105199003152018"}, ["id_number"]),
        ({"name": "张建国", "id_number": "140105199003152018"}, ["name", "id_number"]),
    ],
)
async def test_mismatch(
    neea_client: httpx.AsyncClient, override: dict[str, str], fields: list[str]
) -> None:
    body = {"exam": "NCRE", "certificate_number": "163214010200791", **WANG, **override}
    response = await neea_client.post(PATH, json=body)
    assert response.json() == {"result": "mismatch", "fields": fields}


@pytest.mark.parametrize(
    ("exam", "number"),
    [("CET", "999999999999999"), ("CET", "163214010200791")],
)
async def test_not_found(neea_client: httpx.AsyncClient, exam: str, number: str) -> None:
    body = {"exam": exam, "certificate_number": number, **WANG}
    response = await neea_client.post(PATH, json=body)
    assert response.json() == {"result": "not_found"}


async def test_unknown_exam_is_invalid(neea_client: httpx.AsyncClient) -> None:
    body = {"exam": "IELTS", "certificate_number": "1", **WANG}
    response = await neea_client.post(PATH, json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
