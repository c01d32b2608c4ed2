"""Schemathesis over the application API's OpenAPI document, against the real service under
uvicorn on a database of its own (demo catalogue active, a window open), signed in as a
registered candidate: no input makes a server error, except the documented 503s that say when
to retry."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from application_service import bootstrap
from application_service.adapters import catalogue_store
from application_service.adapters.catalogue_files import DEMO_DIR, DEMO_VERSION, load_catalogue_dir
from application_service.domain.windows import ApplicationWindow
from application_service.entrypoints.api import build_app
from devstack import Endpoints
from eventkit.db import create_pool
from eventkit.envelope import Actor
from servicekit.signing import IDENTITY_ISSUER, Ed25519KeyPair, issue_token
from servicekit.testing import check_documented_answer, serve, serve_jwks

pytestmark = pytest.mark.integration

DOCUMENT = build_app().openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)
KEYPAIR = Ed25519KeyPair.generate("application-fuzz")
CANDIDATE = uuid.uuid4()


async def _prepare(dsn: str) -> None:
    """A database with the service's schema, the demo catalogue active, an open window and
    the candidate known to the evidence projection (as identity's event would make it)."""
    await bootstrap.prepare_database(dsn)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        demo = load_catalogue_dir(DEMO_DIR, DEMO_VERSION)
        assert demo.importable, demo.errors
        await catalogue_store.import_catalogue(pool, demo.catalogue, "ops:fuzz", {}, activate=True)
        now = datetime.now(UTC)
        window = ApplicationWindow(
            window_id=uuid.uuid4(), name="2026年下半年免考申请",
            opens_at=now - timedelta(days=1), applications_close_at=now + timedelta(days=5),
            point_review_close_at=now + timedelta(days=15),
            province_review_close_at=now + timedelta(days=25),
            results_published_at=now + timedelta(days=30),
        )  # fmt: skip
        await bootstrap.wire(pool).windows.open(window, Actor(kind="ops", id="ops-fuzz"))
        await pool.execute(
            """
            INSERT INTO application_evidence.candidates (candidate_id, name, id_number_masked,
                registered_at)
            VALUES ($1, '张建国', '1401**********2018', now())
            """,
            CANDIDATE,
        )
    finally:
        catalogue_store.clear_cache(pool)
        await pool.close()


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    """A JWKS document with the test key, served over HTTP as identity serves its own."""
    with serve_jwks(KEYPAIR) as url:
        yield url


@pytest.fixture(scope="module")
def server(
    stack: Endpoints, module_database: str, jwks_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The application API under uvicorn on a free port, on a database of its own."""
    asyncio.run(_prepare(module_database))
    env = {
        **os.environ,
        **stack.to_env(),
        "EVENTKIT_PG_DSN": module_database,
        "EVENTKIT_LOG_JSON": "true",
        "APPLICATION_IDENTITY_URL": jwks_url,
    }
    log_path: Path = tmp_path_factory.mktemp("application") / "api.log"
    with serve("application_service.entrypoints.api:app", env, log_path) as url:
        yield url
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def candidate() -> dict[str, str]:
    token = issue_token(
        KEYPAIR,
        subject=str(CANDIDATE),
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
    described = f"{case.method} {case.path} -> {response.status_code}: {response.text[:500]}"
    if response.status_code == 503:
        assert response.headers.get("Retry-After"), described
        assert response.json()["error"]["code"].startswith("application."), described
    else:
        assert response.status_code < 500, described
