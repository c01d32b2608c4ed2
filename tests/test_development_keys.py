"""No service runs on the public development keys and secrets unless EVENTKIT_DEV_MODE says it
is a development machine (eventkit.settings.refuse_development_values, used by every settings
class that has such a default)."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from application_service.entrypoints.cli import CliSettings as ApplicationCli
from credential_verify_service.settings import CredentialSettings
from eventkit.settings import DEV_MODE_VARIABLE, dev_mode
from identity_service.adapters.pii import PiiSettings
from identity_service.entrypoints.cli import CliSettings as IdentityCli
from identity_service.settings import IdentitySettings
from media_service.entrypoints.cli import CliSettings as MediaCli
from media_service.settings import MediaSettings

ROOT = Path(__file__).resolve().parents[1]
PREFIXES = ("IDENTITY_", "CREDENTIAL_", "MEDIA_", "APPLICATION_", "DEVSTACK_", "SANDBOX_")


def key(byte: bytes) -> str:
    return base64.b64encode(byte * 32).decode()


# Each settings class with public development defaults: the variables it must refuse, and
# real values that make it start.
CASES: list[tuple[type[BaseSettings], set[str], dict[str, str]]] = [
    (
        PiiSettings,
        {"IDENTITY_PII_KEY", "IDENTITY_LOOKUP_KEY"},
        {"IDENTITY_PII_KEY": key(b"p"), "IDENTITY_LOOKUP_KEY": key(b"l")},
    ),
    (
        IdentitySettings,
        {"IDENTITY_CAPTCHA_SECRET", "IDENTITY_SMS_SECRET"},
        {"IDENTITY_CAPTCHA_SECRET": "s" * 40, "IDENTITY_SMS_SECRET": "m" * 32},
    ),
    (
        CredentialSettings,
        {"CREDENTIAL_CHSI_SECRET", "CREDENTIAL_NEEA_SECRET", "CREDENTIAL_ID_FINGERPRINT_KEY"},
        {
            "CREDENTIAL_CHSI_SECRET": "c" * 32,
            "CREDENTIAL_NEEA_SECRET": "n" * 32,
            "CREDENTIAL_ID_FINGERPRINT_KEY": key(b"l"),
        },
    ),
    (
        MediaSettings,
        {"MEDIA_S3_ACCESS_KEY", "MEDIA_S3_SECRET_KEY"},
        {"MEDIA_S3_ACCESS_KEY": "AKIAPROD", "MEDIA_S3_SECRET_KEY": "x" * 40},
    ),
    (IdentityCli, {"IDENTITY_PG_DSN"}, {"IDENTITY_PG_DSN": "postgresql://u:p@db/identity"}),
    (MediaCli, {"MEDIA_PG_DSN"}, {"MEDIA_PG_DSN": "postgresql://u:p@db/media"}),
    (
        ApplicationCli,
        {"APPLICATION_PG_DSN"},
        {"APPLICATION_PG_DSN": "postgresql://u:p@db/application"},
    ),
]

IDS = [f"{settings.__module__.split('.')[0]}.{settings.__name__}" for settings, _, _ in CASES]


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment with no development flag and none of the services' own variables."""
    monkeypatch.delenv(DEV_MODE_VARIABLE, raising=False)
    for name in list(os.environ):
        if name.startswith(PREFIXES) or name == "EVENTKIT_PG_DSN":
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.unit
@pytest.mark.parametrize(("settings", "variables", "real"), CASES, ids=IDS)
def test_development_values_are_refused_naming_the_variable(
    production: pytest.MonkeyPatch,
    settings: type[BaseSettings],
    variables: set[str],
    real: dict[str, str],
) -> None:
    assert not dev_mode()
    with pytest.raises(ValidationError) as refused:
        settings()
    text = str(refused.value)
    assert {v for v in variables if v in text} == variables, text
    assert DEV_MODE_VARIABLE in text
    assert "devstack-secret" not in text and "sandbox-secret" not in text, "values stay hidden"
    for name, value in real.items():
        production.setenv(name, value)
    settings()  # real values start


@pytest.mark.unit
@pytest.mark.parametrize(("settings", "variables", "real"), CASES, ids=IDS)
def test_the_development_flag_allows_the_development_values(
    production: pytest.MonkeyPatch,
    settings: type[BaseSettings],
    variables: set[str],
    real: dict[str, str],
) -> None:
    production.setenv(DEV_MODE_VARIABLE, "true")
    settings()
    production.setenv(DEV_MODE_VARIABLE, "false")
    with pytest.raises(ValidationError):
        settings()


def production_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(PREFIXES) and k not in {DEV_MODE_VARIABLE, "EVENTKIT_PG_DSN"}
    }
    # Nothing listens here: a service that did not stop at its settings fails to connect.
    env["EVENTKIT_PG_DSN"] = "postgresql://nobody@127.0.0.1:9/nothing"
    return env


@pytest.mark.integration
@pytest.mark.parametrize(
    ("package", "variable"),
    [
        ("identity_service", "IDENTITY_PII_KEY"),
        ("credential_verify_service", "CREDENTIAL_CHSI_SECRET"),
        ("media_service", "MEDIA_S3_SECRET_KEY"),
    ],
)
def test_a_service_api_refuses_to_start_on_development_keys(package: str, variable: str) -> None:
    started = subprocess.run(
        [sys.executable, "-m", "uvicorn", f"{package}.entrypoints.api:app",
         "--host", "127.0.0.1", "--port", "0"],
        env=production_env(), capture_output=True, text=True, timeout=60, cwd=ROOT, check=False,
    )  # fmt: skip
    assert started.returncode != 0
    assert variable in started.stderr + started.stdout, started.stderr[-2000:]
    assert DEV_MODE_VARIABLE in started.stderr + started.stdout
