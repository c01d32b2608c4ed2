"""Identity's settings: the platform's (EVENTKIT_*) plus its own secrets (IDENTITY_*)."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit.settings import refuse_development_values
from servicekit.context import parse_networks

DEV_ONLY_CAPTCHA_SECRET = "dev-only-captcha-secret-not-for-production"  # noqa: S105 - public dev default
DEV_ONLY_SMS_SECRET = "sms-sandbox-secret"  # noqa: S105 - the SMS sandbox's public secret


class IdentitySettings(BaseSettings):
    """IDENTITY_* variables; the keys for personal data are in `adapters.pii.PiiSettings`."""

    model_config = SettingsConfigDict(
        env_prefix="IDENTITY_", extra="ignore", frozen=True, populate_by_name=True
    )

    captcha_secret: SecretStr = SecretStr(DEV_ONLY_CAPTCHA_SECRET)
    captcha_ttl_seconds: int = Field(default=120, ge=10, le=900)
    access_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    refresh_ttl_days: int = Field(default=7, ge=1, le=30)
    password_hash_limit: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="argon2id hashes (64 MiB each) in flight at once in one process; unset: "
        "the cores, and no more than a quarter of the memory limit holds",
    )
    password_hash_wait_seconds: float = Field(
        default=3.0,
        ge=0,
        le=30,
        description="how long a login or registration waits for a hashing slot before a 503",
    )
    sms_url: str = Field(
        default="http://127.0.0.1:8203",
        validation_alias=AliasChoices("IDENTITY_SMS_URL", "PROVIDER_URL_SMS"),
        description="the SMS gateway's base URL (docs/providers.md; locally the sandbox)",
    )
    sms_secret: SecretStr = SecretStr(DEV_ONLY_SMS_SECRET)
    sms_timeout_seconds: float = Field(default=5.0, gt=0, le=30)
    sms_sends_per_mobile: int = Field(
        default=5, ge=1, le=10_000, description="SMS codes sent to one number in an hour"
    )
    sms_sends_per_address: int = Field(
        default=20, ge=1, le=10_000, description="SMS codes sent for one client address in an hour"
    )
    trusted_proxies: str = Field(
        default="127.0.0.1/32,::1/128",
        description="peers whose X-Forwarded-For is believed (the web UIs, the ingress): "
        "comma-separated addresses or CIDRs; login throttling counts the address they forward",
    )

    @model_validator(mode="after")
    def _no_development_secret(self) -> IdentitySettings:
        refuse_development_values(
            self, {"captcha_secret": DEV_ONLY_CAPTCHA_SECRET, "sms_secret": DEV_ONLY_SMS_SECRET}
        )
        return self

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value
