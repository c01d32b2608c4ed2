"""Prometheus metrics of the HTTP layer and the `/metrics` endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Histogram, generate_latest

# Headers a reverse proxy (the ingress controller) adds; Prometheus and the kubelet send none.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def direct_only(request: Request) -> None:
    """Operational endpoints (/metrics, /readyz) answer only requests that did not come through
    a proxy: the ingress routes a whole host to the API, and these are not for the internet.
    A proxied request gets the same 404 as any unknown path."""
    if any(name in request.headers for name in PROXY_HEADERS):
        raise HTTPException(status_code=404)


REQUEST_SECONDS = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by method, route template and status",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def metrics_router() -> APIRouter:
    """`GET /metrics`: the default Prometheus registry in the text exposition format."""
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False, dependencies=[Depends(direct_only)])
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    return router
