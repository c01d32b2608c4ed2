"""Schemathesis over credential-verify's OpenAPI document, against the real service under
uvicorn on a database of its own and the sandbox processes, signed in as a registered
candidate: no input makes a server error (the documented try-again-later 503s aside)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from contracts.base import DEV_ONLY_ID_FINGERPRINT_KEY, fingerprint_id_number, mask_id_number
from credential_verify_service.adapters.candidates import CANDIDATES_SCHEMA
from credential_verify_service.entrypoints.api import build_app
from devstack import Endpoints
from servicekit.signing import IDENTITY_ISSUER, Ed25519KeyPair, issue_token
from servicekit.testing import check_documented_answer, free_port, serve, serve_jwks

pytestmark = pytest.mark.integration

DOCUMENT = build_app().openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
KEYPAIR = Ed25519KeyPair.generate("cv-fuzz")
CANDIDATE_ID = uuid.uuid4()
# 张建国 of the sandboxes' seed, so certificate checks and CHSI calls really happen.
NAME, ID_NUMBER = "张建国", "140105199003152018"
# The documented "try again later" answers: not server errors.
TRY_AGAIN_LATER = {
    "credential.chsi_unavailable",
    "credential.neea_unavailable",
    "credential.provider_unavailable",
    "credential.candidate_not_synced",
}


async def _register(dsn: str) -> None:
    """The candidate as identity's CandidateRegistered put them into the projection."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            f"INSERT INTO {CANDIDATES_SCHEMA}.candidates (candidate_id, name,"
            " id_number_fingerprint, id_number_masked, registered_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            CANDIDATE_ID,
            NAME,
            fingerprint_id_number(ID_NUMBER, DEV_ONLY_ID_FINGERPRINT_KEY),
            mask_id_number(ID_NUMBER),
            datetime.now(UTC),
        )
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    """A JWKS document with the test key, served over HTTP as identity serves its own."""
    with serve_jwks(KEYPAIR) as url:
        yield url


@pytest.fixture(scope="module")
def server(
    stack: Endpoints,
    module_database: str,
    jwks_url: str,
    sandboxes: object,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """credential-verify's API under uvicorn on a free port, with a database of its own."""
    chsi, neea = sandboxes.chsi, sandboxes.neea  # type: ignore[attr-defined]
    for base in (chsi, neea):
        httpx.post(f"{base}/_sandbox/reset", timeout=5).raise_for_status()
    port = free_port()
    env = {
        **os.environ,
        **stack.to_env(),
        "EVENTKIT_PG_DSN": module_database,
        "EVENTKIT_LOG_JSON": "true",
        "CREDENTIAL_CHSI_URL": chsi,
        "CREDENTIAL_NEEA_URL": neea,
        "CREDENTIAL_IDENTITY_URL": jwks_url,
        "CREDENTIAL_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CREDENTIAL_PROVIDER_TIMEOUT": "2",
    }
    log_path = tmp_path_factory.mktemp("credential-verify") / "api.log"
    with serve("credential_verify_service.entrypoints.api:app", env, log_path, port=port) as url:
        asyncio.run(_register(module_database))  # the schema exists once it is ready
        yield url
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def candidate() -> dict[str, str]:
    token = issue_token(
        KEYPAIR,
        subject=str(CANDIDATE_ID),
        kind="candidate",
        roles=["candidate"],
        issuer=IDENTITY_ISSUER,
        ttl=timedelta(hours=1),
    )
    return {"Authorization": f"Bearer {token}"}


def _error_code(text: str) -> str | None:
    try:
        body = json.loads(text)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


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
    if response.status_code == 503 and _error_code(response.text) in TRY_AGAIN_LATER:
        [retry_after] = response.headers["retry-after"]  # schemathesis: name -> values
        assert int(retry_after) > 0
        return
    assert response.status_code < 500, (
        f"{case.method} {case.path} -> {response.status_code}: {response.text[:500]}"
    )
