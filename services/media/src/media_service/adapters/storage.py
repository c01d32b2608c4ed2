"""Photo objects in S3-compatible storage (SeaweedFS locally, any S3 in production).

boto3 is synchronous: every call runs in a bounded thread pool of its own, so a slow or dead
endpoint holds at most `workers` threads and never the event loop; the client's connection pool is
sized to match. Failures that mean "storage is not there right now" (connection refused, timeouts,
5xx, throttling) become `StorageUnavailable`, which the API answers with 503 and Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
)

from media_service.domain.errors import StorageUnavailable

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

log = logging.getLogger(__name__)
T = TypeVar("T")

CACHE_CONTROL = "private, max-age=300"
_MISSING = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
# Storage that refuses our keys is as unusable as storage that is down (and needs ops).
_MISCONFIGURED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}


class Variant(StrEnum):
    """The stored copies of one photo."""

    ORIGINAL = "original"  # the bytes as uploaded: the evidence (EXIF, GPS, trailing data)
    FULL = "full"  # sanitised: full resolution, re-encoded JPEG, upright, no metadata
    DISPLAY = "display"  # re-encoded JPEG, upright, no metadata
    THUMBNAIL = "thumbnail"  # small JPEG for lists


def object_key(photo_id: uuid.UUID, variant: Variant) -> str:
    """Where a copy lives: one prefix per photo, spread by the id's first two hex digits."""
    hex_id = photo_id.hex
    return f"photos/{hex_id[:2]}/{hex_id}/{variant.value}"


def all_keys(photo_id: uuid.UUID) -> list[str]:
    """Every key a photo may have."""
    return [object_key(photo_id, variant) for variant in Variant]


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """How to reach the bucket; `public_endpoint` is the host browsers use for signed URLs."""

    endpoint: str
    access_key: str
    secret_key: str
    region: str
    bucket: str
    public_endpoint: str | None = None
    workers: int = 8
    connect_timeout: float = 2.0
    read_timeout: float = 10.0
    attempts: int = 2


def object_filename(photo_id: uuid.UUID, variant: Variant, photo_format: str) -> str:
    """The file name a browser saves a copy as: only the original may be a PNG."""
    extension = "png" if variant is Variant.ORIGINAL and photo_format == "png" else "jpg"
    return f"{photo_id.hex}-{variant.value}.{extension}"


def disposition_of(photo_id: uuid.UUID, variant: Variant, photo_format: str) -> str:
    """Content-Disposition of a copy: the re-encoded ones inline, the untouched original as an
    attachment (a browser saves it rather than render what it may hide)."""
    kind = "attachment" if variant is Variant.ORIGINAL else "inline"
    return f'{kind}; filename="{object_filename(photo_id, variant, photo_format)}"'


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object read back: its bytes and content type."""

    body: bytes
    content_type: str


class ObjectStore:
    """The bucket of photos, with async methods that run boto3 off the event loop."""

    def __init__(self, config: StorageConfig) -> None:
        self.config = config
        self.bucket = config.bucket
        self._client = self._make_client(config.endpoint)
        self._signer = (
            self._make_client(config.public_endpoint)
            if config.public_endpoint and config.public_endpoint != config.endpoint
            else self._client
        )
        self._executor = ThreadPoolExecutor(
            max_workers=config.workers, thread_name_prefix="media-s3"
        )

    def _make_client(self, endpoint: str) -> S3Client:
        client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=self.config.access_key,
            aws_secret_access_key=self.config.secret_key,
            region_name=self.config.region,
            config=Config(
                connect_timeout=self.config.connect_timeout,
                read_timeout=self.config.read_timeout,
                retries={"max_attempts": self.config.attempts, "mode": "standard"},
                max_pool_connections=self.config.workers,
                s3={"addressing_style": "path"},
                signature_version="s3v4",
            ),
        )
        return client

    async def _run(self, what: str, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, call)
        except ClientError as exc:
            if _code(exc) in _MISCONFIGURED:
                log.error("object storage refuses our credentials: %s", _code(exc))
                raise StorageUnavailable(f"{what}: {exc}") from exc
            if _is_unavailable(exc):
                raise StorageUnavailable(f"{what}: {exc}") from exc
            raise
        except (EndpointConnectionError, ConnectTimeoutError) as exc:  # never connected
            raise StorageUnavailable(f"{what}: {type(exc).__name__}", reached=False) from exc
        except BotoCoreError as exc:  # read timeouts, broken responses
            raise StorageUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc

    async def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist (it stays private: no policy, no ACL)."""

        def call() -> None:
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _code(exc) not in _MISSING:
                    raise
                self._client.create_bucket(Bucket=self.bucket)

        await self._run("ensure bucket", call)

    async def check(self) -> None:
        """Readiness: the bucket exists (it is created if storage was down at startup)."""
        await self.ensure_bucket()

    async def put(
        self,
        key: str,
        body: bytes,
        content_type: str,
        metadata: Mapping[str, str],
        *,
        disposition: str = "inline",
        cache_control: str = CACHE_CONTROL,
    ) -> None:
        """Store one object (a whole body: photos are at most a few MB) with the headers it is
        served with: its exact Content-Type, Content-Disposition and Cache-Control (S3 stores
        these and returns them on every GET, signed links included).

        `X-Content-Type-Options` is not an S3 object header: SeaweedFS (like AWS S3) neither
        stores it nor answers with it, and a presigned GET cannot ask for it. The API's own
        streams send nosniff; signed links carry only copies whose bytes are exactly their type
        (re-encoded by us), and the untouched original only to its owner, as an attachment."""
        await self._run(
            f"put {key}",
            lambda: self._client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                ContentDisposition=disposition,
                CacheControl=cache_control,
                Metadata=dict(metadata),
            ),
        )

    async def get(self, key: str) -> StoredObject | None:
        """An object's bytes, or None when it is not there."""

        def call() -> StoredObject | None:
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise
            with response["Body"] as body:
                data = body.read()
            return StoredObject(data, response.get("ContentType", "application/octet-stream"))

        return await self._run(f"get {key}", call)

    async def exists(self, key: str) -> bool:
        """Whether an object is there."""

        def call() -> bool:
            try:
                self._client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return False
                raise
            return True

        return await self._run(f"head {key}", call)

    async def stored_headers(self, key: str) -> dict[str, str] | None:
        """The headers an object was stored with (HEAD): type, disposition, caching; None when
        it is not there (ops checks and tests)."""

        def call() -> dict[str, str] | None:
            try:
                head = self._client.head_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise
            return {
                "content-type": head.get("ContentType", ""),
                "content-disposition": head.get("ContentDisposition", ""),
                "cache-control": head.get("CacheControl", ""),
            }

        return await self._run(f"head {key}", call)

    async def delete(self, keys: Iterable[str]) -> None:
        """Remove objects; keys that are already gone are fine."""
        wanted: list[ObjectIdentifierTypeDef] = [{"Key": key} for key in keys]
        if not wanted:
            return

        def call() -> None:
            response = self._client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": wanted, "Quiet": True}
            )
            errors = [e for e in response.get("Errors", []) if e.get("Code") not in _MISSING]
            if errors:
                raise StorageUnavailable(f"delete failed for {len(errors)} objects: {errors[:3]}")

        await self._run("delete objects", call)

    async def list_keys(self, prefix: str = "photos/") -> list[str]:
        """Every key under `prefix` (ops checks and tests; the sweeper does not list)."""

        def call() -> list[str]:
            keys: list[str] = []
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
            return keys

        return await self._run("list objects", call)

    async def signed_url(
        self, key: str, ttl: timedelta, *, content_type: str, disposition: str
    ) -> tuple[str, datetime]:
        """A presigned GET for a browser, and when it stops working. The response headers are
        also fixed in the signature (response-content-type, -disposition, -cache-control), so
        they hold even for an object stored without them."""
        seconds = max(1, int(ttl.total_seconds()))

        def call() -> str:
            url: str = self._signer.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentType": content_type,
                    "ResponseContentDisposition": disposition,
                    "ResponseCacheControl": "private, max-age=60",
                },
                ExpiresIn=seconds,
            )
            return url

        url = await self._run(f"sign {key}", call)
        return url, datetime.now(UTC) + timedelta(seconds=seconds)

    def close(self) -> None:
        """Stop the thread pool (waits for calls in flight)."""
        self._executor.shutdown(wait=True, cancel_futures=True)


def _code(exc: ClientError) -> str:
    error: Any = exc.response.get("Error", {})
    return str(error.get("Code", ""))


def _is_unavailable(exc: ClientError) -> bool:
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    # A missing bucket on a write means storage is not set up yet (readiness creates it).
    unavailable = {"SlowDown", "ServiceUnavailable", "NoSuchBucket"}
    return status >= 500 or status == 429 or _code(exc) in unavailable
