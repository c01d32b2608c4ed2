"""What the provider adapters share: config, the request/response plumbing and error mapping.

Inside an adapter every provider fault becomes a `ProviderFault` (retryable or not, counted by
the breaker or not); the public methods turn faults and open circuits into the domain's
provider-unavailable error, so callers never see a raw httpx or pydantic exception.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from servicekit.resilience import CircuitBreaker, CircuitOpen, RetryPolicy

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ProviderConfig:
    """Where a provider lives and how we talk to it."""

    base_url: str
    client_secret: str
    timeout: float = 5.0  # seconds, per call (read/write/pool)
    connect_timeout: float = 2.0
    retry_attempts: int = 3
    failure_threshold: int = 5  # consecutive failures that open the circuit
    reset_timeout: float = 30.0  # seconds an open circuit waits before a trial call

    def url(self, path: str) -> str:
        return self.base_url.rstrip("/") + path


class StrictModel(BaseModel):
    """Provider payloads: extra fields are tolerated, wrong types are not."""

    model_config = ConfigDict(extra="ignore", strict=False, frozen=True)


class ProviderFault(Exception):
    """The provider gave no usable answer."""

    def __init__(self, detail: str, *, retryable: bool, connect: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
        self.connect = connect  # the request never reached the provider


def is_fault(exc: BaseException) -> bool:
    return isinstance(exc, ProviderFault)


def retry_any_fault(exc: BaseException) -> bool:
    return isinstance(exc, ProviderFault) and exc.retryable


def retry_connect_only(exc: BaseException) -> bool:
    return isinstance(exc, ProviderFault) and exc.connect


def retry_after_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


class ProviderTransport:
    """Authenticated JSON calls through a retry policy and a circuit breaker."""

    def __init__(
        self,
        name: str,
        config: ProviderConfig,
        *,
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self._client = client or httpx.AsyncClient()
        self._owns_client = client is None
        self.retry = retry or RetryPolicy(attempts=config.retry_attempts, retry_if=retry_any_fault)
        self.breaker = breaker or breaker_for(config, name)

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def send(self, method: str, path: str, *, json: object | None = None) -> httpx.Response:
        """One request; transport errors, 5xx and auth failures become ProviderFault."""
        timeout = httpx.Timeout(self.config.timeout, connect=self.config.connect_timeout)
        try:
            response = await self._client.request(
                method,
                self.config.url(path),
                json=json,
                headers={
                    "Authorization": f"Bearer {self.config.client_secret}",
                    "Accept": "application/json",
                },
                timeout=timeout,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise ProviderFault(
                f"{self.name}: cannot connect ({type(exc).__name__})", retryable=True, connect=True
            ) from exc
        except httpx.TimeoutException as exc:
            raise ProviderFault(
                f"{self.name}: timed out ({type(exc).__name__})", retryable=True
            ) from exc
        except httpx.HTTPError as exc:
            raise ProviderFault(
                f"{self.name}: transport error ({type(exc).__name__})", retryable=True
            ) from exc
        if response.status_code >= 500:
            raise ProviderFault(f"{self.name}: HTTP {response.status_code}", retryable=True)
        if response.status_code in (401, 403):
            raise ProviderFault(
                f"{self.name}: client credentials refused (HTTP {response.status_code})",
                retryable=False,
            )
        return response

    async def run(
        self,
        call: Callable[[], Awaitable[T]],
        *,
        retry_if: Callable[[BaseException], bool],
        unavailable: Callable[[str, int | None], Exception],
    ) -> T:
        """Run `call` (which raises ProviderFault or domain errors) through retry and breaker."""
        try:
            return await self.retry.run(lambda: self.breaker.call(call), retry_if=retry_if)
        except CircuitOpen as exc:
            raise unavailable(
                f"{self.name}: circuit open", retry_after_seconds(exc.retry_after)
            ) from exc
        except ProviderFault as exc:
            raise unavailable(exc.detail, None) from exc


def breaker_for(config: ProviderConfig, name: str) -> CircuitBreaker:
    """A breaker that counts only provider faults (a 404 is an answer, not a failure)."""
    return CircuitBreaker(
        name=name,
        failure_threshold=config.failure_threshold,
        reset_timeout=config.reset_timeout,
        is_failure=is_fault,
    )


def parse_json(name: str, response: httpx.Response, model: type[M]) -> M:
    """Strictly parse the body into `model`; anything else is a (retryable) ProviderFault."""
    try:
        return model.model_validate_json(response.content)
    except ValidationError as exc:
        raise ProviderFault(
            f"{name}: HTTP {response.status_code} body does not match {model.__name__}: "
            f"{exc.error_count()} error(s)",
            retryable=True,
        ) from exc


def unexpected_status(name: str, response: httpx.Response) -> ProviderFault:
    return ProviderFault(f"{name}: unexpected HTTP {response.status_code}", retryable=False)
