"""The application service's settings: the platform's (EVENTKIT_*) plus its own (APPLICATION_*)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApplicationSettings(BaseSettings):
    """APPLICATION_* variables."""

    model_config = SettingsConfigDict(
        env_prefix="APPLICATION_", extra="ignore", frozen=True, populate_by_name=True
    )

    identity_url: str = Field(
        default="http://127.0.0.1:8101",
        validation_alias=AliasChoices("APPLICATION_IDENTITY_URL", "SERVICE_URL_IDENTITY"),
    )
