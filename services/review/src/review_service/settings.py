"""Review's settings: the platform's (EVENTKIT_*) plus its own (REVIEW_*)."""

from __future__ import annotations

import base64
import binascii
from datetime import timedelta

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class ReviewSettings(BaseSettings):
    """REVIEW_* variables."""

    model_config = SettingsConfigDict(
        env_prefix="REVIEW_", extra="ignore", frozen=True, populate_by_name=True
    )

    identity_url: str = Field(
        default="http://127.0.0.1:8101",
        validation_alias=AliasChoices("REVIEW_IDENTITY_URL", "SERVICE_URL_IDENTITY"),
    )
    claim_lease_minutes: float = Field(default=30, gt=0, le=480)
    lease_sweep_seconds: float = Field(default=30, gt=0)

    media_url: str = Field(
        default="http://127.0.0.1:8104",
        validation_alias=AliasChoices("REVIEW_MEDIA_URL", "SERVICE_URL_MEDIA"),
    )
    photo_origins: str = Field(
        default="",
        validation_alias=AliasChoices("REVIEW_PHOTO_ORIGINS", "DEVSTACK_S3_ENDPOINT"),
        description="where signed photo links point (the S3 public endpoint), for the CSP; "
        "comma-separated",
    )
    session_key: SecretStr | None = Field(
        default=None,
        description="base64 of 32 random bytes sealing the reviewer UI's session cookies; "
        "unset: a random key per process (sessions end on restart; one process only)",
    )
    old_session_keys: SecretStr | None = Field(
        default=None, description="kid=base64,kid=base64: keys still accepted after a rotation"
    )
    session_key_id: str = Field(default="k1", pattern=r"^[A-Za-z0-9_-]{1,16}$")
    secure_cookies: bool = Field(
        default=True, description="Secure cookies (HTTPS only); false only for local http"
    )
    idle_minutes: float = Field(default=30, gt=0, le=240, description="staff idle timeout")
    session_hours: float = Field(default=10, gt=0, le=24, description="absolute session age")
    public_origins: str = Field(
        default="", description="the UI's own origins (https://review.example.cn) for CSRF"
    )

    @field_validator("session_key")
    @classmethod
    def _key_is_32_bytes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            decode_key(value.get_secret_value())
        return value

    @property
    def lease(self) -> timedelta:
        """How long a claim lasts without renewal."""
        return timedelta(minutes=self.claim_lease_minutes)


def decode_key(text: str) -> bytes:
    """32 bytes from base64 (standard or url-safe); ValueError otherwise."""
    try:
        standard = text.strip().replace("-", "+").replace("_", "/").rstrip("=")
        raw = base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("session key must be base64") from exc
    if len(raw) != 32:
        raise ValueError(f"session key must be 32 bytes, got {len(raw)}")
    return raw
