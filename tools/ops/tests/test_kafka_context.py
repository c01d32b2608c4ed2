"""Unit tests: how ops reaches Kafka (OPS_KAFKA_*, else a service's EVENTKIT_KAFKA_*, else the
local stack's PLAINTEXT listener)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ops.cli import run
from ops.context import EXIT_USAGE, OpsContext, OpsError, kafka_connection

from devstack.tls import issue_server_certificate
from eventkit.kafka import KafkaConnection

pytestmark = pytest.mark.unit

SECRET = "ops-secret-never-printed"


def test_nothing_configured_means_no_kafka() -> None:
    assert kafka_connection({}) is None
    with pytest.raises(OpsError, match="OPS_KAFKA_BOOTSTRAP") as caught:
        OpsContext({}, "ops").require_kafka()
    assert caught.value.exit_code == EXIT_USAGE


def test_a_bare_bootstrap_stays_plaintext() -> None:
    assert kafka_connection({"OPS_KAFKA_BOOTSTRAP": "k:9092"}) == KafkaConnection("k:9092")
    assert kafka_connection({"EVENTKIT_KAFKA_BOOTSTRAP": "e:9092"}) == KafkaConnection("e:9092")


def test_ops_kafka_variables_give_a_sasl_ssl_connection(tmp_path: Path) -> None:
    ca = issue_server_certificate(tmp_path).ca_file
    env = {
        "OPS_KAFKA_BOOTSTRAP": "kafka-bootstrap.kafka:9093",
        "OPS_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "OPS_KAFKA_SASL_MECHANISM": "scram-sha-512",
        "OPS_KAFKA_USERNAME": "ops",
        "OPS_KAFKA_PASSWORD": SECRET,
        "OPS_KAFKA_CA_FILE": str(ca),
        # a service's variables are not mixed in when OPS_KAFKA_BOOTSTRAP is set
        "EVENTKIT_KAFKA_BOOTSTRAP": "other:9092",
        "EVENTKIT_KAFKA_USERNAME": "review",
    }
    connection = kafka_connection(env)
    assert connection == KafkaConnection(
        "kafka-bootstrap.kafka:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        username="ops",
        password=SECRET,
        ca_file=ca,
    )
    assert OpsContext({}, "ops", connection).require_kafka() is connection


def test_a_service_s_eventkit_kafka_variables_are_used_without_ops_ones(tmp_path: Path) -> None:
    connection = kafka_connection(
        {
            "EVENTKIT_KAFKA_BOOTSTRAP": "k:9093",
            "EVENTKIT_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "EVENTKIT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "EVENTKIT_KAFKA_USERNAME": "review",
            "EVENTKIT_KAFKA_PASSWORD": SECRET,
        }
    )
    assert connection is not None
    assert (connection.security_protocol, connection.username) == ("SASL_PLAINTEXT", "review")


def test_the_local_stack_is_reached_over_plaintext() -> None:
    env = {
        "DEVSTACK_PG_HOST": "127.0.0.1",
        "DEVSTACK_PG_PORT": "5432",
        "DEVSTACK_PG_USER": "u",
        "DEVSTACK_PG_PASSWORD": "p",
        "DEVSTACK_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
        "DEVSTACK_KAFKA_SASL_BOOTSTRAP": "127.0.0.1:9094",
        "DEVSTACK_S3_ENDPOINT": "http://127.0.0.1:8333",
        "DEVSTACK_S3_ACCESS_KEY": "a",
        "DEVSTACK_S3_SECRET_KEY": "s",
    }
    assert kafka_connection(env) == KafkaConnection("127.0.0.1:9092")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OPS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "OPS_KAFKA_PASSWORD": SECRET},
         "OPS_KAFKA_SASL_MECHANISM"),
        ({"OPS_KAFKA_SECURITY_PROTOCOL": "SSL", "OPS_KAFKA_CA_FILE": "/no/ca.crt"},
         "OPS_KAFKA_CA_FILE"),
        ({"OPS_KAFKA_SECURITY_PROTOCOL": "TLS"}, "OPS_KAFKA_SECURITY_PROTOCOL"),
        ({"OPS_KAFKA_USERNAME": "ops", "OPS_KAFKA_PASSWORD": SECRET}, "OPS_KAFKA_USERNAME"),
    ],
)  # fmt: skip
def test_bad_ops_kafka_settings_are_a_usage_error_naming_the_variable(
    env: dict[str, str], variable: str
) -> None:
    with pytest.raises(OpsError, match=variable) as caught:
        kafka_connection({"OPS_KAFKA_BOOTSTRAP": "k:9093", **env})
    assert caught.value.code == "bad_kafka_config"
    assert caught.value.exit_code == EXIT_USAGE
    assert SECRET not in str(caught.value)


async def test_the_cli_refuses_bad_kafka_settings_before_doing_anything(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPS_KAFKA_BOOTSTRAP", "k:9093")
    monkeypatch.setenv("OPS_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("OPS_KAFKA_PASSWORD", SECRET)
    assert await run(["--operator", "tester", "lag"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "[bad_kafka_config]" in err and "OPS_KAFKA_SASL_MECHANISM" in err
    assert SECRET not in err
