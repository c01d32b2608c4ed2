"""Calling another service's JSON API from a service: timeouts, and two clear kinds of failure.

Services never import each other; they call each other's HTTP APIs, often with the signed-in
user's own access token. Every such client wants the same behaviour, which `PeerClient` gives:

- a 4xx answer in the shared error body becomes `PeerRefused`, keeping the peer's stable code,
  its Chinese message, its field errors and Retry-After, so a page can show them where they
  belong;
- the peer unreachable, timing out, answering 5xx, or answering something that is not the
  shared shape is `PeerUnavailable`: a 503 `AppError` with a Retry-After, which the error
  handlers render as "try again later".

    class MediaPeer(PeerClient):
        peer = "media"
        unavailable_message = "照片服务暂时不可用，请稍后再试"

        async def photo(self, token: str, photo_id: str) -> dict[str, Any]:
            return self._json(await self._call("GET", f"/api/media/photos/{photo_id}",
                                               token=token))

Nothing here logs a token, a request body or a response body: only the peer, the method, the
path and the status.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

from eventkit.logs import correlation_id
from eventkit.text import ascii_int
from servicekit.errors import AppError

log = logging.getLogger("servicekit.peers")

DEFAULT_RETRY_AFTER = 10
REQUEST_ID_HEADER = "X-Request-ID"


@dataclass(frozen=True, slots=True)
class PeerFieldError:
    """One field the peer refused: its dotted path, stable code and Chinese message."""

    field: str
    code: str
    message: str


class PeerUnavailable(AppError):
    """The peer could not be reached or answered something unusable (503 with Retry-After).

    `peer_code` is the peer's own error code when it answered a 5xx in the shared error body
    (`media.busy`, `credential.chsi_unavailable`, ...), else None."""

    def __init__(
        self,
        code: str,
        message: str,
        detail_en: str,
        *,
        retry_after: int = DEFAULT_RETRY_AFTER,
        peer_code: str | None = None,
    ) -> None:
        super().__init__(
            code, message, detail_en, status=503, headers={"Retry-After": str(retry_after)}
        )
        self.retry_after = retry_after
        self.peer_code = peer_code


class PeerRefused(Exception):
    """The peer answered a client error in the shared error body: its status, code, Chinese
    message, Retry-After (seconds, when given) and field errors (`field` alone becomes one)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: int | None,
        fields: Sequence[PeerFieldError] = (),
    ) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.fields: tuple[PeerFieldError, ...] = tuple(fields)


def retry_after_of(response: httpx.Response) -> int | None:
    """The Retry-After header in whole seconds, or None when absent or not a number."""
    return ascii_int(response.headers.get("retry-after", "").strip())


def field_errors_of(error: Mapping[str, Any]) -> list[PeerFieldError]:
    """The field errors of a shared error body's `error` object (malformed entries skipped)."""
    found: list[PeerFieldError] = []
    raw = error.get("fields")
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, dict) and all(
                isinstance(item.get(k), str) for k in ("field", "code", "message")
            ):
                found.append(PeerFieldError(item["field"], item["code"], item["message"]))
    single = error.get("field")
    if isinstance(single, str) and single and not any(f.field == single for f in found):
        found.append(PeerFieldError(single, str(error["code"]), str(error["message"])))
    return found


def _error_object(response: httpx.Response) -> dict[str, Any] | None:
    """The `error` object of the shared body, when the answer has one with code and message."""
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(error, dict):
        return None
    if not isinstance(error.get("code"), str) or not isinstance(error.get("message"), str):
        return None
    return error


class PeerClient:
    """Base of a client of another service's API: one `_call` with timeouts and clear failures.

    Subclasses set `peer` (a short name for codes and logs: `web.<peer>_unavailable`) and
    `unavailable_message`, and may override `_unavailable` / `_refused` to raise their own types.
    """

    peer: ClassVar[str] = "peer"
    unavailable_message: ClassVar[str] = "相关服务暂时不可用，请稍后再试"

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        forward_request_id: bool = True,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._forward_request_id = forward_request_id

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # --- failures (overridable) -----------------------------------------------------------

    def _unavailable(
        self, detail_en: str, *, retry_after: int | None = None, peer_code: str | None = None,
        message: str | None = None,
    ) -> PeerUnavailable:  # fmt: skip
        """The error for an unreachable peer or an unusable answer."""
        return PeerUnavailable(
            f"web.{self.peer}_unavailable",
            message or self.unavailable_message,
            detail_en,
            retry_after=retry_after or DEFAULT_RETRY_AFTER,
            peer_code=peer_code,
        )

    def _refused(
        self,
        status: int,
        code: str,
        message: str,
        retry_after: int | None,
        fields: Sequence[PeerFieldError],
    ) -> Exception:
        """The error for a 4xx answer in the shared error body."""
        return PeerRefused(status, code, message, retry_after, fields)

    # --- calls ------------------------------------------------------------------------------

    def _headers(self, token: str | None, headers: Mapping[str, str] | None) -> dict[str, str]:
        merged: dict[str, str] = {}
        rid = correlation_id.get() if self._forward_request_id else None
        if rid:
            merged[REQUEST_ID_HEADER] = rid
        if token is not None:
            merged["Authorization"] = f"Bearer {token}"
        merged.update(headers or {})
        return merged

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        token: str | None = None,
        files: Any = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """Send one request; the response when 2xx/3xx, else PeerRefused or PeerUnavailable.

        `path` is logged on failure: never put personal data in it (use the body)."""
        try:
            response = await self._http.request(
                method,
                path,
                json=json,
                files=files,
                params=params,
                headers=self._headers(token, headers) or None,
                timeout=httpx.Timeout(timeout) if timeout is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.HTTPError as exc:
            log.warning(
                "peer unreachable",
                extra={"peer": self.peer, "method": method, "path": path,
                       "error": type(exc).__name__},
            )  # fmt: skip
            raise self._unavailable(f"{method} {path}: {type(exc).__name__}") from exc
        status = response.status_code
        if status < 400:
            return response
        error = _error_object(response)
        if status >= 500:
            log.warning(
                "peer failed",
                extra={"peer": self.peer, "method": method, "path": path, "status": status,
                       "peer_code": error["code"] if error else None},
            )  # fmt: skip
            raise self._unavailable(
                f"{method} {path}: HTTP {status}",
                retry_after=retry_after_of(response),
                peer_code=error["code"] if error else None,
                message=error["message"] if error and status == 503 else None,
            )
        if error is None:
            raise self._unavailable(f"{method} {path}: HTTP {status} without an error body")
        raise self._refused(
            status,
            str(error["code"]),
            str(error["message"]),
            retry_after_of(response),
            field_errors_of(error),
        )

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        """The answer's JSON object (PeerUnavailable when it is not one)."""
        try:
            body = response.json()
        except ValueError as exc:
            raise self._unavailable(f"{self.peer} answered something that is not JSON") from exc
        if not isinstance(body, dict):
            raise self._unavailable(f"{self.peer} answered an unexpected JSON value")
        return body
