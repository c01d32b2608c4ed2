"""教育部教育考试院 (NEEA) adapter: certificate queries for CET, PETS, NCRE and NIT.

`POST /api/v1/certificates/query` is a read-only query, so provider faults are retried. Every
fault and an open circuit become NeeaUnavailable; the three documented results become the
domain's outcomes.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import httpx
from pydantic import Field, TypeAdapter, ValidationError

from credential_verify_service.adapters._http import (
    ProviderConfig,
    ProviderFault,
    ProviderTransport,
    StrictModel,
    retry_any_fault,
    unexpected_status,
)
from credential_verify_service.domain.certificates import (
    CertificateCheckRequest,
    CertificateConfirmed,
    CertificateHolderMismatch,
    CertificateNotFound,
    CertificateOutcome,
)
from credential_verify_service.domain.errors import NeeaUnavailable
from servicekit.resilience import CircuitBreaker, RetryPolicy


class CertificateModel(StrictModel):
    exam: Literal["CET", "PETS", "NCRE", "NIT"]
    certificate_number: str = Field(min_length=1)
    name: str = Field(min_length=1)
    level: int | None = Field(default=None, ge=1, le=6)
    subject: str | None = None
    score: int | None = Field(default=None, ge=0, le=710)
    exam_session: str = Field(min_length=1)
    issued_on: date


class VerifiedModel(StrictModel):
    result: Literal["verified"]
    certificate: CertificateModel


class MismatchModel(StrictModel):
    result: Literal["mismatch"]
    fields: list[Literal["name", "id_number"]] = Field(min_length=1)


class NotFoundModel(StrictModel):
    result: Literal["not_found"]


QueryResult = Annotated[
    VerifiedModel | MismatchModel | NotFoundModel, Field(discriminator="result")
]
_QUERY_RESULT: TypeAdapter[VerifiedModel | MismatchModel | NotFoundModel] = TypeAdapter(QueryResult)


def _unavailable(detail: str, retry_after: int | None) -> Exception:
    return NeeaUnavailable(detail, retry_after=retry_after)


def _outcome(body: VerifiedModel | MismatchModel | NotFoundModel) -> CertificateOutcome:
    if isinstance(body, NotFoundModel):
        return CertificateNotFound()
    if isinstance(body, MismatchModel):
        return CertificateHolderMismatch(tuple(dict.fromkeys(body.fields)))
    cert = body.certificate
    return CertificateConfirmed(
        exam=cert.exam,
        certificate_number=cert.certificate_number,
        name=cert.name,
        level=cert.level,
        subject=cert.subject,
        score=cert.score,
        exam_session=cert.exam_session,
        issued_on=cert.issued_on,
    )


class NeeaClient:
    """Async client of NEEA's certificate query."""

    name = "neea"

    def __init__(
        self,
        config: ProviderConfig,
        *,
        client: httpx.AsyncClient | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self._transport = ProviderTransport(
            self.name, config, client=client, retry=retry, breaker=breaker
        )

    @property
    def breaker(self) -> CircuitBreaker:
        return self._transport.breaker

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def __aenter__(self) -> NeeaClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def query_certificate(self, request: CertificateCheckRequest) -> CertificateOutcome:
        """Ask NEEA whether the certificate exists and is the candidate's."""
        payload = {
            "exam": request.provider_exam,
            "id_number": request.id_number,
            "name": request.name,
            "certificate_number": request.certificate_number,
        }

        async def call() -> CertificateOutcome:
            response = await self._transport.send(
                "POST", "/api/v1/certificates/query", json=payload
            )
            if response.status_code != 200:
                raise unexpected_status(self.name, response)
            try:
                body = _QUERY_RESULT.validate_json(response.content)
            except ValidationError as exc:
                raise ProviderFault(
                    f"neea: HTTP 200 body is not a query result: {exc.error_count()} error(s)",
                    retryable=True,
                ) from exc
            return _outcome(body)

        return await self._transport.run(call, retry_if=retry_any_fault, unavailable=_unavailable)


__all__ = ["NeeaClient", "ProviderConfig"]
