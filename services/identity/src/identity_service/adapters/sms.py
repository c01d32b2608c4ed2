"""The SMS gateway port (SmsSender) and its HTTP adapter (docs/providers.md, "SMS gateway")."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

import httpx

from contracts.base import mask_mobile
from identity_service.domain.errors import DomainError

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30


class SmsUnavailable(DomainError):
    """The SMS gateway did not take the message (down, slow, or answering nonsense)."""

    code = "identity.sms_unavailable"
    status = 503
    retry_after = RETRY_AFTER_SECONDS

    def __init__(self, detail_en: str) -> None:
        super().__init__("短信服务暂时不可用，请稍后重试", detail_en)


class SmsSender(Protocol):
    """Sends one template message; raises SmsUnavailable when the gateway does not take it."""

    async def send(self, mobile: str, template_id: str, params: Mapping[str, str]) -> None:
        """Deliver `template_id` with `params` to `mobile`."""
        ...


class HttpSmsSender:
    """The gateway over HTTP: `POST {base}/api/v1/messages` with the client secret as bearer."""

    def __init__(
        self,
        base_url: str,
        secret: str,
        *,
        timeout: float = 5.0,
        connect_timeout: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {secret}"},
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            transport=transport,
        )

    @property
    def base_url(self) -> str:
        """The gateway's base URL."""
        return str(self._http.base_url).rstrip("/")

    async def send(self, mobile: str, template_id: str, params: Mapping[str, str]) -> None:
        """Deliver the message; any failure is SmsUnavailable (logged with the mobile masked)."""
        body = {"mobile": mobile, "template_id": template_id, "params": dict(params)}
        try:
            response = await self._http.post("/api/v1/messages", json=body)
        except httpx.HTTPError as exc:
            log.warning(
                "sms gateway unreachable for %s: %s", mask_mobile(mobile), type(exc).__name__
            )
            raise SmsUnavailable(f"sms gateway unreachable: {type(exc).__name__}") from exc
        accepted = False
        if response.status_code == 200:
            try:
                accepted = response.json().get("status") == "accepted"
            except ValueError:
                accepted = False
        if not accepted:
            log.warning(
                "sms gateway refused the message to %s: HTTP %s",
                mask_mobile(mobile),
                response.status_code,
            )
            raise SmsUnavailable(f"sms gateway answered HTTP {response.status_code}")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()
