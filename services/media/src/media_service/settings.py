"""Media's settings: the platform's (EVENTKIT_*) plus its own (MEDIA_*).

The S3 connection falls back to the local stack's DEVSTACK_S3_* variables, so `make run` and the
tests need no extra configuration; production sets MEDIA_S3_*.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit.settings import refuse_development_values
from media_service.adapters.storage import StorageConfig
from media_service.service_layer.photos import Limits

DEV_ONLY_S3_ACCESS_KEY = "devstack"  # the local stack's SeaweedFS credentials
DEV_ONLY_S3_SECRET_KEY = "devstack-secret"  # noqa: S105


class MediaSettings(BaseSettings):
    """MEDIA_* variables (S3 falls back to DEVSTACK_S3_*, identity to SERVICE_URL_IDENTITY)."""

    model_config = SettingsConfigDict(
        env_prefix="MEDIA_", extra="ignore", frozen=True, populate_by_name=True
    )

    s3_endpoint: str = Field(
        default="http://127.0.0.1:58333",
        validation_alias=AliasChoices("MEDIA_S3_ENDPOINT", "DEVSTACK_S3_ENDPOINT"),
    )
    s3_public_endpoint: str | None = Field(
        default=None, description="host browsers reach for signed URLs, if not s3_endpoint"
    )
    s3_access_key: str = Field(
        default=DEV_ONLY_S3_ACCESS_KEY,
        validation_alias=AliasChoices("MEDIA_S3_ACCESS_KEY", "DEVSTACK_S3_ACCESS_KEY"),
    )
    s3_secret_key: SecretStr = Field(
        default=SecretStr(DEV_ONLY_S3_SECRET_KEY),
        validation_alias=AliasChoices("MEDIA_S3_SECRET_KEY", "DEVSTACK_S3_SECRET_KEY"),
    )
    s3_region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices("MEDIA_S3_REGION", "DEVSTACK_S3_REGION"),
    )
    bucket: str = Field(default="zikao-media", min_length=3, max_length=63)
    s3_workers: int = Field(default=8, ge=1, le=64)
    s3_connect_timeout: float = Field(default=2.0, gt=0)
    s3_read_timeout: float = Field(default=10.0, gt=0)

    identity_url: str = Field(
        default="http://127.0.0.1:8101",
        validation_alias=AliasChoices("MEDIA_IDENTITY_URL", "SERVICE_URL_IDENTITY"),
    )

    max_photos_per_owner: int = Field(default=60, ge=1)
    link_ttl_seconds: int = Field(default=300, ge=1, le=3600)
    unused_ttl_days: float = Field(default=30, gt=0)
    orphan_age_minutes: float = Field(default=30, gt=0)
    sweep_interval_seconds: float = Field(default=300, gt=0)
    process_workers: int = Field(default=2, ge=1, le=32)
    max_uploads_in_flight: int = Field(default=16, ge=1)
    decode_wait_seconds: float = Field(default=2.0, ge=0, le=60)

    @model_validator(mode="after")
    def _no_development_credentials(self) -> MediaSettings:
        refuse_development_values(
            self,
            {"s3_access_key": DEV_ONLY_S3_ACCESS_KEY, "s3_secret_key": DEV_ONLY_S3_SECRET_KEY},
        )
        return self

    def storage(self) -> StorageConfig:
        """How to reach the bucket."""
        return StorageConfig(
            endpoint=self.s3_endpoint,
            access_key=self.s3_access_key,
            secret_key=self.s3_secret_key.get_secret_value(),
            region=self.s3_region,
            bucket=self.bucket,
            public_endpoint=self.s3_public_endpoint,
            workers=self.s3_workers,
            connect_timeout=self.s3_connect_timeout,
            read_timeout=self.s3_read_timeout,
        )

    def limits(self) -> Limits:
        """The use cases' tunables."""
        return Limits(
            max_photos_per_owner=self.max_photos_per_owner,
            link_ttl=timedelta(seconds=self.link_ttl_seconds),
            unused_ttl=timedelta(days=self.unused_ttl_days),
            orphan_age=timedelta(minutes=self.orphan_age_minutes),
            process_workers=self.process_workers,
            max_uploads_in_flight=self.max_uploads_in_flight,
            decode_wait=timedelta(seconds=self.decode_wait_seconds),
        )
