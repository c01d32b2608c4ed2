"""NEEA certificate query sandbox (CET, PETS, NCRE, NIT)."""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Mapping
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, Field

from sandboxes.faults import DEFAULT_FAULT_TIMEOUT, FaultInjector, install_sandbox_basics
from sandboxes.seed import load_seed_with_extra

Exam = Literal["CET", "PETS", "NCRE", "NIT"]
PUBLIC_FIELDS = (
    "exam",
    "certificate_number",
    "name",
    "level",
    "subject",
    "score",
    "exam_session",
    "issued_on",
)


class CertificateQuery(BaseModel):
    """Body of `POST /api/v1/certificates/query`."""

    exam: Exam
    id_number: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=64)
    certificate_number: str = Field(min_length=1, max_length=64)


class NeeaSandbox:
    """In-memory certificate register; one instance per app."""

    def __init__(self, seed: Mapping[str, Any]) -> None:
        self.seed = copy.deepcopy(dict(seed))
        self._lock = threading.Lock()
        self.certificates: dict[tuple[str, str], dict[str, Any]] = {}
        self.reset()

    def reset(self) -> None:
        """Restore the seed."""
        certificates = {
            (c["exam"], c["certificate_number"]): c
            for c in copy.deepcopy(self.seed.get("certificates", []))
        }
        with self._lock:
            self.certificates = certificates

    def query(self, body: CertificateQuery) -> dict[str, Any]:
        """Verified, mismatch (with the differing fields) or not found."""
        cert = self.certificates.get((body.exam, body.certificate_number.strip()))
        if cert is None:
            return {"result": "not_found"}
        fields = []
        if body.name.strip() != cert["name"]:
            fields.append("name")
        if body.id_number.strip().upper() != cert["id_number"]:
            fields.append("id_number")
        if fields:
            return {"result": "mismatch", "fields": fields}
        return {"result": "verified", "certificate": {k: cert.get(k) for k in PUBLIC_FIELDS}}


def create_app(
    *,
    secret: str = "neea-sandbox-secret",  # noqa: S107 - the documented sandbox secret
    seed: Mapping[str, Any] | None = None,
    fault_timeout: float = DEFAULT_FAULT_TIMEOUT,
) -> FastAPI:
    """The NEEA sandbox app; `seed=None` loads the packaged `neea_seed.json`."""
    sandbox = NeeaSandbox(
        seed if seed is not None else load_seed_with_extra("neea_seed.json", "neea")
    )
    faults = FaultInjector(timeout_seconds=fault_timeout)
    app = FastAPI(title="NEEA certificate query sandbox (CET, PETS, NCRE, NIT)")
    app.state.sandbox = sandbox
    app.state.faults = faults
    install_sandbox_basics(app, secret=secret, faults=faults, reset=sandbox.reset)

    @app.post("/api/v1/certificates/query")
    async def query_certificate(body: CertificateQuery) -> dict[str, Any]:
        return sandbox.query(body)

    return app


app = create_app(
    secret=os.environ.get("SANDBOX_NEEA_SECRET", "neea-sandbox-secret"),
    fault_timeout=float(
        os.environ.get("SANDBOX_FAULT_TIMEOUT_SECONDS", str(DEFAULT_FAULT_TIMEOUT))
    ),
)
