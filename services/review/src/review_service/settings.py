"""Review's settings: the platform's (EVENTKIT_*) plus its own (REVIEW_*)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import AliasChoices, Field
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

    @property
    def lease(self) -> timedelta:
        """How long a claim lasts without renewal."""
        return timedelta(minutes=self.claim_lease_minutes)
