"""The application service's settings: the platform's (EVENTKIT_*) plus its own (APPLICATION_*),
the candidate portal's session settings among them (APPLICATION_SESSION_KEY, …)."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from servicekit.webui import WebSessionSettings


class ApplicationSettings(WebSessionSettings):
    """APPLICATION_* variables."""

    model_config = SettingsConfigDict(
        env_prefix="APPLICATION_", extra="ignore", frozen=True, populate_by_name=True
    )

    identity_url: str = Field(
        default="http://127.0.0.1:8101",
        validation_alias=AliasChoices("APPLICATION_IDENTITY_URL", "SERVICE_URL_IDENTITY"),
    )
    credential_url: str = Field(
        default="http://127.0.0.1:8103",
        validation_alias=AliasChoices(
            "APPLICATION_CREDENTIAL_URL", "SERVICE_URL_CREDENTIAL_VERIFY"
        ),
    )
    media_url: str = Field(
        default="http://127.0.0.1:8104",
        validation_alias=AliasChoices("APPLICATION_MEDIA_URL", "SERVICE_URL_MEDIA"),
    )
    photo_origins: str = Field(
        default="",
        validation_alias=AliasChoices("APPLICATION_PHOTO_ORIGINS", "DEVSTACK_S3_ENDPOINT"),
        description="where signed photo links point (the S3 public endpoint), for the CSP",
    )
