"""servicekit's Kafka readiness check on the real broker: PLAINTEXT, SASL_SSL with SCRAM-SHA-512,
and a wrong password reported as failing within the readiness timeout."""

from __future__ import annotations

import dataclasses
import logging
import time

import httpx
import pytest

from devstack import Endpoints
from eventkit.kafka import KafkaConnection, KafkaUnavailable
from servicekit import create_app
from servicekit.health import kafka_check

pytestmark = pytest.mark.integration


async def readyz(check: object, timeout: float = 5.0) -> httpx.Response:
    app = create_app("test", version="0", health_checks={"kafka": check}, readiness_timeout=timeout)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/readyz")


async def test_the_check_passes_over_plaintext_as_before(stack: Endpoints) -> None:
    check = kafka_check(stack.kafka_bootstrap)
    try:
        await check()
    finally:
        await check.close()


async def test_the_check_passes_over_sasl_ssl(secured_kafka: KafkaConnection) -> None:
    check = kafka_check(secured_kafka, timeout=5.0)
    try:
        response = await readyz(check)
        assert response.status_code == 200, response.text
        assert response.json()["checks"] == {"kafka": "ok"}
    finally:
        await check.close()


async def test_a_wrong_password_makes_the_service_unready_quickly_and_says_why(
    secured_kafka: KafkaConnection, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    bad = dataclasses.replace(secured_kafka, password="not-the-password-91c2")
    check = kafka_check(bad, timeout=5.0)
    try:
        started = time.monotonic()
        response = await readyz(check, timeout=10.0)
        assert time.monotonic() - started < 10.0
        assert response.status_code == 503
        assert response.json()["checks"] == {"kafka": "failed"}
        with pytest.raises(KafkaUnavailable, match="authentication failed for user"):
            await check()
    finally:
        await check.close()
    failures = [r for r in caplog.records if r.getMessage() == "readiness check failed"]
    assert failures and "authentication failed" in failures[0].__dict__["error"]
    assert bad.password not in caplog.text
