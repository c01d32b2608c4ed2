"""Schemathesis over media's OpenAPI document, against the real service under uvicorn on the
real database and bucket, signed in as a candidate: no input makes a server error."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from devstack import Endpoints
from media_service.entrypoints.api import build_app
from servicekit.signing import IDENTITY_ISSUER, Ed25519KeyPair, issue_token
from servicekit.testing import check_documented_answer, serve, serve_jwks

pytestmark = pytest.mark.integration

DOCUMENT = build_app().openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
KEYPAIR = Ed25519KeyPair.generate("fuzz")


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    """A JWKS document with the test key, served over HTTP as identity serves its own."""
    with serve_jwks(KEYPAIR) as url:
        yield url


@pytest.fixture(scope="module")
def server(
    stack: Endpoints, module_database: str, jwks_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """media's API under uvicorn on a free port, with a database and bucket of its own."""
    env = {
        **os.environ,
        **stack.to_env(),
        "EVENTKIT_PG_DSN": module_database,
        "EVENTKIT_LOG_JSON": "true",
        "MEDIA_BUCKET": f"fuzz-{uuid.uuid4().hex[:12]}",
        "MEDIA_IDENTITY_URL": jwks_url,
    }
    log_path = tmp_path_factory.mktemp("media") / "api.log"
    with serve("media_service.entrypoints.api:app", env, log_path) as url:
        yield url
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def candidate() -> dict[str, str]:
    token = issue_token(
        KEYPAIR,
        subject=str(uuid.uuid4()),
        kind="candidate",
        roles=["candidate"],
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
    case: schemathesis.Case, server: str, candidate: dict[str, str]
) -> None:
    response = case.call(base_url=server, headers=candidate, timeout=30)
    check_documented_answer(
        DOCUMENT, case.method, case.path, response.status_code, response.headers, response.text
    )
    assert response.status_code < 500, (
        f"{case.method} {case.path} -> {response.status_code}: {response.text[:500]}"
    )
