"""Signed links to certificate photos, asked of the media service with the reviewer's own token.

Media decides who may see a photo (a reviewer of the point whose submitted application cites
it, or a senior reviewer); review only passes the reviewer's token along, so it can never show a
photo its user may not see. A photo that cannot be fetched is shown as unavailable, with the
reason, and never stops the case page from rendering.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PhotoLinks:
    """One photo's presigned URLs, or why there are none (`problem` in Chinese)."""

    photo_id: uuid.UUID
    display: str | None = None
    thumbnail: str | None = None
    original: str | None = None  # the full-resolution copy (sanitised by media)
    expires_at: datetime | None = None
    problem: str | None = None


class MediaLinks:
    """Asks media for the signed links of many photos at once."""

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 3.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=httpx.Timeout(timeout), transport=transport
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _one(self, photo_id: uuid.UUID, token: str) -> PhotoLinks:
        try:
            response = await self._http.get(
                f"/api/media/photos/{photo_id}/links",
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.HTTPError as exc:
            log.warning(
                "media unreachable", extra={"photo_id": str(photo_id), "error": type(exc).__name__}
            )
            return PhotoLinks(photo_id, problem="照片服务暂时不可用")
        if response.status_code == 404:
            return PhotoLinks(photo_id, problem="照片不存在或无权查看")
        if response.status_code != 200:
            log.warning(
                "media refused links",
                extra={"photo_id": str(photo_id), "status": response.status_code},
            )
            return PhotoLinks(photo_id, problem="照片暂时无法显示")
        try:
            body = response.json()
            return PhotoLinks(
                photo_id,
                display=str(body["display"]),
                thumbnail=str(body["thumbnail"]),
                # staff are given the sanitised full-resolution copy, never the untouched original
                # (media: `full`; an older media answered `original`)
                original=str(body.get("full") or body["original"]),
                expires_at=datetime.fromisoformat(str(body["expires_at"])),
            )
        except (ValueError, KeyError, TypeError):
            return PhotoLinks(photo_id, problem="照片暂时无法显示")

    async def links(
        self, photo_ids: Iterable[uuid.UUID], token: str
    ) -> dict[uuid.UUID, PhotoLinks]:
        """The links of every photo (concurrently), each one either links or a problem."""
        unique = list(dict.fromkeys(photo_ids))
        found = await asyncio.gather(*(self._one(p, token) for p in unique))
        return {item.photo_id: item for item in found}
