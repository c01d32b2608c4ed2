"""Identity's settings: the platform's (EVENTKIT_*) plus its own secrets (IDENTITY_*)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from servicekit.context import parse_networks

DEV_ONLY_CAPTCHA_SECRET = "dev-only-captcha-secret-not-for-production"  # noqa: S105 - public dev default


class IdentitySettings(BaseSettings):
    """IDENTITY_* variables; the keys for personal data are in `adapters.pii.PiiSettings`."""

    model_config = SettingsConfigDict(env_prefix="IDENTITY_", extra="ignore", frozen=True)

    captcha_secret: SecretStr = SecretStr(DEV_ONLY_CAPTCHA_SECRET)
    captcha_ttl_seconds: int = Field(default=120, ge=10, le=900)
    access_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    refresh_ttl_days: int = Field(default=7, ge=1, le=30)
    trusted_proxies: str = Field(
        default="127.0.0.1/32,::1/128",
        description="peers whose X-Forwarded-For is believed (the web UIs, the ingress): "
        "comma-separated addresses or CIDRs; login throttling counts the address they forward",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value
