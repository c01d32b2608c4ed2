"""Unit tests of how Kafka clients connect: `KafkaConnection` and the EVENTKIT_KAFKA_* settings."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from eventkit.kafka import KafkaConfigError, KafkaConnection, kafka_connection
from eventkit.settings import PlatformSettings

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-do-not-print"  # what must never show up


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    """A real CA certificate (the devstack's generator; no network, no broker)."""
    from devstack.tls import issue_server_certificate

    return issue_server_certificate(tmp_path / "tls").ca_file


def sasl_ssl(ca_file: Path | None, **changes: object) -> KafkaConnection:
    fields: dict[str, object] = {
        "bootstrap": "broker-0:9093,broker-1:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "username": "review",
        "password": SECRET,
        "ca_file": ca_file,
    }
    fields.update(changes)
    return KafkaConnection(**fields)  # type: ignore[arg-type]


def test_a_bootstrap_string_stays_plaintext_with_the_same_arguments_as_before() -> None:
    connection = kafka_connection("127.0.0.1:9092")
    assert connection == KafkaConnection("127.0.0.1:9092")
    assert connection.client_kwargs() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert kafka_connection(connection) is connection


def test_sasl_ssl_gives_credentials_and_one_verifying_ssl_context(ca_file: Path) -> None:
    connection = sasl_ssl(ca_file)
    kwargs = connection.client_kwargs()
    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "bootstrap_servers": "broker-0:9093,broker-1:9093",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "review",
        "sasl_plain_password": SECRET,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert connection.client_kwargs()["ssl_context"] is context  # built once
    assert [c["subject"] for c in context.get_ca_certs()] != []  # the given CA only


def test_ssl_without_a_ca_file_uses_the_system_trust_store() -> None:
    connection = KafkaConnection("kafka.example:9093", security_protocol="SSL")
    kwargs = connection.client_kwargs()
    assert set(kwargs) == {"bootstrap_servers", "security_protocol", "ssl_context"}
    assert kwargs["ssl_context"].check_hostname
    assert "system CAs" in connection.describe()


def test_sasl_plaintext_has_credentials_and_no_tls() -> None:
    connection = KafkaConnection(
        "k:9092",
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-256",
        username="u",
        password=SECRET,
    )
    kwargs = connection.client_kwargs()
    assert "ssl_context" not in kwargs
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256"


def test_the_password_is_masked_everywhere_it_could_be_printed(
    ca_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    connection = sasl_ssl(ca_file)
    for text in (repr(connection), str(connection), connection.describe(), f"{connection!r}"):
        assert SECRET not in text
    assert "password='**********'" in repr(connection)
    assert "SCRAM-SHA-512 as review" in connection.describe()
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("test").info("connecting %s %r", connection, connection)
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"sasl_mechanism": None}, "sasl_mechanism", "required with SASL_SSL"),
        ({"username": None}, "username", "required with SASL_SSL"),
        ({"username": ""}, "username", "required with SASL_SSL"),
        ({"password": None}, "password", "required with SASL_SSL"),
        ({"sasl_mechanism": "GSSAPI"}, "sasl_mechanism", "not one of"),
        ({"security_protocol": "TLS"}, "security_protocol", "not one of"),
        ({"security_protocol": "SASL_PLAINTEXT"}, "ca_file", "only used with SSL or SASL_SSL"),
        ({"security_protocol": "PLAINTEXT"}, "sasl_mechanism", "only used with SASL"),
        ({"bootstrap": " "}, "bootstrap", "host:port"),
    ],
)
def test_inconsistent_connections_are_refused_naming_the_field(
    ca_file: Path, changes: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(KafkaConfigError, match=reason) as caught:
        sasl_ssl(ca_file, **changes)
    assert caught.value.field == field
    assert SECRET not in str(caught.value)


def test_a_missing_or_unreadable_ca_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ca.crt"
    with pytest.raises(KafkaConfigError, match=f"no CA certificate file at {missing}"):
        sasl_ssl(missing)
    garbage = tmp_path / "ca.crt"
    garbage.write_text("not a certificate")
    with pytest.raises(KafkaConfigError, match="is not a PEM CA certificate"):
        sasl_ssl(garbage)


# --- PlatformSettings: the EVENTKIT_KAFKA_* variables ---------------------------------------


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No EVENTKIT_ variable from the surrounding shell leaks into these tests."""
    import os

    for key in list(os.environ):
        if key.startswith("EVENTKIT_"):
            monkeypatch.delenv(key)
    return monkeypatch


def test_settings_default_to_plaintext(env: pytest.MonkeyPatch) -> None:
    env.setenv("EVENTKIT_KAFKA_BOOTSTRAP", "k:9092")
    connection = PlatformSettings().kafka_connection
    assert connection == KafkaConnection("k:9092")
    assert connection.client_kwargs() == {
        "bootstrap_servers": "k:9092",
        "security_protocol": "PLAINTEXT",
    }


def test_settings_read_every_kafka_variable(env: pytest.MonkeyPatch, ca_file: Path) -> None:
    env.setenv("EVENTKIT_KAFKA_BOOTSTRAP", "kafka-bootstrap.kafka:9093")
    env.setenv("EVENTKIT_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")  # case does not matter
    env.setenv("EVENTKIT_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    env.setenv("EVENTKIT_KAFKA_USERNAME", "review")
    env.setenv("EVENTKIT_KAFKA_PASSWORD", SECRET)
    env.setenv("EVENTKIT_KAFKA_CA_FILE", str(ca_file))
    settings = PlatformSettings()
    assert settings.kafka_connection == sasl_ssl(ca_file, bootstrap="kafka-bootstrap.kafka:9093")
    assert settings.kafka_connection is settings.kafka_connection
    assert SECRET not in repr(settings) and SECRET not in str(settings)


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"EVENTKIT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"}, "kafka_sasl_mechanism"),
        (
            {"EVENTKIT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
             "EVENTKIT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
             "EVENTKIT_KAFKA_PASSWORD": SECRET},
            "kafka_username",
        ),
        (
            {"EVENTKIT_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
             "EVENTKIT_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
             "EVENTKIT_KAFKA_USERNAME": "review"},
            "kafka_password",
        ),
        ({"EVENTKIT_KAFKA_PASSWORD": SECRET}, "kafka_password"),
        ({"EVENTKIT_KAFKA_CA_FILE": "/etc/kafka/ca.crt"}, "kafka_ca_file"),
        (
            {"EVENTKIT_KAFKA_SECURITY_PROTOCOL": "SSL",
             "EVENTKIT_KAFKA_CA_FILE": "/no/such/ca.crt"},
            "kafka_ca_file",
        ),
        ({"EVENTKIT_KAFKA_SECURITY_PROTOCOL": "SSL_PLAINTEXT"}, "kafka_security_protocol"),
        ({"EVENTKIT_KAFKA_SASL_MECHANISM": "KERBEROS"}, "kafka_sasl_mechanism"),
    ],
)  # fmt: skip
def test_inconsistent_settings_fail_at_load_naming_the_field(
    env: pytest.MonkeyPatch, variables: dict[str, str], field: str
) -> None:
    for key, value in variables.items():
        env.setenv(key, value)
    with pytest.raises(ValidationError) as caught:
        PlatformSettings()
    (error,) = caught.value.errors()
    assert error["loc"] == (field,)
    assert SECRET not in str(caught.value)
    if error["type"] == "kafka_config":
        assert field.upper() in error["msg"]  # EVENTKIT_KAFKA_...: the variable to fix
