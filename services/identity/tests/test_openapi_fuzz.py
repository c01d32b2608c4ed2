"""Schemathesis over identity's OpenAPI document, against the real service: never a 5xx."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from identity_service.entrypoints.api import build_app
from servicekit.testing import check_documented_answer, serve

pytestmark = pytest.mark.integration

DOCUMENT = build_app().openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def server(module_database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """identity's API under uvicorn on a free port, on a database of its own."""
    env = {**os.environ, "EVENTKIT_PG_DSN": module_database, "EVENTKIT_LOG_JSON": "true"}
    log_path = tmp_path_factory.mktemp("identity") / "api.log"
    with serve("identity_service.entrypoints.api:app", env, log_path) as url:
        yield url
    assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_input_makes_a_server_error(case: schemathesis.Case, server: str) -> None:
    response = case.call(base_url=server, timeout=30)
    check_documented_answer(
        DOCUMENT, case.method, case.path, response.status_code, response.headers, response.text
    )
    assert response.status_code < 500, (
        f"{case.method} {case.path} -> {response.status_code}: {response.text[:500]}"
    )
