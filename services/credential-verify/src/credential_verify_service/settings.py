"""credential-verify's settings: the platform's (EVENTKIT_*) plus its own (CREDENTIAL_*).

Provider URLs fall back to the local sandboxes' PROVIDER_URL_* (set by `make run`); the
fingerprint key falls back to the public dev key, like identity's.
"""

from __future__ import annotations

import base64

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.base import DEV_ONLY_ID_FINGERPRINT_KEY
from credential_verify_service.adapters._http import ProviderConfig
from eventkit.settings import refuse_development_values

# Public development values (the sandboxes' documented secrets, the dev fingerprint key): refused
# unless EVENTKIT_DEV_MODE=true.
DEV_ONLY_CHSI_SECRET = "chsi-sandbox-secret"  # noqa: S105
DEV_ONLY_NEEA_SECRET = "neea-sandbox-secret"  # noqa: S105
DEV_ONLY_FINGERPRINT_KEY = base64.b64encode(DEV_ONLY_ID_FINGERPRINT_KEY).decode()


class CredentialSettings(BaseSettings):
    """CREDENTIAL_* variables."""

    model_config = SettingsConfigDict(
        env_prefix="CREDENTIAL_", extra="ignore", frozen=True, populate_by_name=True
    )

    chsi_url: str = Field(
        default="http://127.0.0.1:8201",
        validation_alias=AliasChoices("CREDENTIAL_CHSI_URL", "PROVIDER_URL_CHSI"),
    )
    chsi_secret: SecretStr = SecretStr(DEV_ONLY_CHSI_SECRET)
    neea_url: str = Field(
        default="http://127.0.0.1:8202",
        validation_alias=AliasChoices("CREDENTIAL_NEEA_URL", "PROVIDER_URL_NEEA"),
    )
    neea_secret: SecretStr = SecretStr(DEV_ONLY_NEEA_SECRET)
    provider_timeout: float = Field(default=5.0, gt=0)
    # Where CHSI sends its signed callbacks: this service's public base URL.
    public_url: str = Field(
        default="http://127.0.0.1:8103",
        validation_alias=AliasChoices("CREDENTIAL_PUBLIC_URL", "SERVICE_URL_CREDENTIAL_VERIFY"),
    )
    identity_url: str = Field(
        default="http://127.0.0.1:8101",
        validation_alias=AliasChoices("CREDENTIAL_IDENTITY_URL", "SERVICE_URL_IDENTITY"),
    )
    id_fingerprint_key: SecretStr = Field(
        default=SecretStr(DEV_ONLY_FINGERPRINT_KEY),
        validation_alias=AliasChoices("CREDENTIAL_ID_FINGERPRINT_KEY", "IDENTITY_LOOKUP_KEY"),
        description="base64; the same key identity fingerprints ID numbers with",
    )
    callback_tolerance_seconds: int = Field(default=300, ge=30, le=3600)
    expiry_sweep_seconds: float = Field(default=15, gt=0)

    @model_validator(mode="after")
    def _no_development_secrets(self) -> CredentialSettings:
        refuse_development_values(
            self,
            {
                "chsi_secret": DEV_ONLY_CHSI_SECRET,
                "neea_secret": DEV_ONLY_NEEA_SECRET,
                "id_fingerprint_key": DEV_ONLY_FINGERPRINT_KEY,
            },
        )
        return self

    def chsi(self) -> ProviderConfig:
        """How to reach CHSI."""
        return ProviderConfig(
            base_url=self.chsi_url,
            client_secret=self.chsi_secret.get_secret_value(),
            timeout=self.provider_timeout,
        )

    def neea(self) -> ProviderConfig:
        """How to reach the exam authority's certificate query."""
        return ProviderConfig(
            base_url=self.neea_url,
            client_secret=self.neea_secret.get_secret_value(),
            timeout=self.provider_timeout,
        )

    def fingerprint_key(self) -> bytes:
        """The raw fingerprint key."""
        return base64.b64decode(self.id_fingerprint_key.get_secret_value())

    @property
    def callback_url(self) -> str:
        """The URL CHSI posts decisions to."""
        return f"{self.public_url.rstrip('/')}/api/credentials/chsi/callback"
