"""Review's settings: the platform's (EVENTKIT_*) plus its own (REVIEW_*)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from servicekit.webui import WebSessionSettings


class ReviewSettings(WebSessionSettings):
    """REVIEW_* variables (the reviewer UI's session settings too: REVIEW_SESSION_KEY, …)."""

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

    @property
    def lease(self) -> timedelta:
        """How long a claim lasts without renewal."""
        return timedelta(minutes=self.claim_lease_minutes)
