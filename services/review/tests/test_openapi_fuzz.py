"""Schemathesis over review's OpenAPI document, against the real service under uvicorn on a
fresh database, signed in as a senior reviewer: no input makes a server error."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from devstack import Endpoints
from review_service.entrypoints.api import build_app
from servicekit.signing import IDENTITY_ISSUER, Ed25519KeyPair, issue_token
from servicekit.testing import check_documented_answer, serve, serve_jwks

pytestmark = pytest.mark.integration

DOCUMENT = build_app().openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
KEYPAIR = Ed25519KeyPair.generate("review-fuzz")


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    """A JWKS document with the test key, served over HTTP as identity serves its own."""
    with serve_jwks(KEYPAIR) as url:
        yield url


@pytest.fixture(scope="module")
def server(
    stack: Endpoints, module_database: str, jwks_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """review's API under uvicorn on a free port, with a database of its own."""
    env = {
        **os.environ,
        **stack.to_env(),
        "EVENTKIT_PG_DSN": module_database,
        "EVENTKIT_LOG_JSON": "true",
        "REVIEW_IDENTITY_URL": jwks_url,
    }
    log_path = tmp_path_factory.mktemp("review") / "api.log"
    with serve("review_service.entrypoints.api:app", env, log_path) as url:
        yield url
    log = log_path.read_text()
    assert "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module")
def senior() -> dict[str, str]:
    token = issue_token(
        KEYPAIR,
        subject=str(uuid.uuid4()),
        kind="staff",
        roles=["senior_reviewer"],
        issuer=IDENTITY_ISSUER,
        ttl=timedelta(hours=1),
    )
    return {"Authorization": f"Bearer {token}"}


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_makes_a_server_error(
    case: schemathesis.Case, server: str, senior: dict[str, str]
) -> None:
    response = case.call(base_url=server, headers=senior, timeout=30)
    check_documented_answer(
        DOCUMENT, case.method, case.path, response.status_code, response.headers, response.text
    )
    assert response.status_code < 500, (
        f"{case.method} {case.path} -> {response.status_code}: {response.text[:500]}"
    )


def test_the_queue_answers_under_uvicorn(server: str, senior: dict[str, str]) -> None:
    import httpx

    response = httpx.get(f"{server}/api/review/queue", headers=senior, timeout=30)
    assert response.status_code == 200, response.text[:300]
