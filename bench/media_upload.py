"""Media upload end to end: HTTP multipart -> checks and copies -> S3 (4 objects) -> event + row.

    devstack exec -- uv run python bench/media_upload.py [--uploads 120] [--concurrency 4]

The media app runs in-process (ASGI) on the stack's real PostgreSQL and SeaweedFS, with a test
signing key in place of identity's JWKS. Every upload is the ~3 MB, 12-megapixel JPEG of
bench/media_pipeline.py, sent by `concurrency` clients at once. Reported: latency p50/p95/max per
upload, uploads per second, and the process's peak RSS. Results are appended to
bench/results/media_upload.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from media_pipeline import encode_near_limit, synthetic_photo

from devstack.endpoints import Endpoints
from devstack.testing import create_database
from eventkit.db import create_pool
from eventkit.migrations import migrate
from media_service import bootstrap
from media_service.adapters.storage import ObjectStore, StorageConfig
from media_service.entrypoints.api import attach, build_app
from media_service.service_layer.photos import Limits
from media_service.settings import MediaSettings
from servicekit.auth import StaticKeys, TokenVerifier
from servicekit.signing import IDENTITY_ISSUER, Ed25519KeyPair, issue_token

RESULTS = Path(__file__).resolve().parent / "results" / "media_upload.json"


async def fresh_database(ep: Endpoints) -> str:
    dsn = await create_database(ep, f"bench_media_{uuid.uuid4().hex[:8]}")
    await migrate(dsn, "bench")
    return dsn


async def run(uploads: int, concurrency: int) -> dict[str, object]:
    ep = Endpoints.from_env()
    dsn = await fresh_database(ep)
    await bootstrap.prepare_database(dsn)
    pool = await create_pool(dsn, min_size=2, max_size=10)
    objects = ObjectStore(
        StorageConfig(
            endpoint=ep.s3_endpoint,
            access_key=ep.s3_access_key,
            secret_key=ep.s3_secret_key,
            region=ep.s3_region,
            bucket=f"bench-{uuid.uuid4().hex[:12]}",
        )
    )
    await objects.ensure_bucket()
    media = bootstrap.wire(pool, objects, MediaSettings())
    media.photos.limits = Limits(max_photos_per_owner=uploads + 1)
    keypair = Ed25519KeyPair.generate("bench")
    app = build_app()
    verifier = TokenVerifier(StaticKeys({"bench": keypair.public_key}), issuer=IDENTITY_ISSUER)
    attach(app, media, verifier)
    data, _quality = encode_near_limit(synthetic_photo())
    token = issue_token(
        keypair,
        subject=str(uuid.uuid4()),
        kind="candidate",
        roles=["candidate"],
        issuer=IDENTITY_ISSUER,
        ttl=timedelta(hours=1),
    )
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(uploads):
        queue.put_nowait(i)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://media", timeout=60
    ) as client:
        # One warm-up upload (thread pools, connections, JIT-free but cold caches).
        warm = await client.post(
            "/api/media/photos", headers=headers, files={"file": ("w.jpg", data, "image/jpeg")}
        )
        assert warm.status_code == 201, warm.text

        busy: list[int] = []

        async def worker() -> None:
            while not queue.empty():
                queue.get_nowait()
                started = time.perf_counter()
                response = await client.post(
                    "/api/media/photos",
                    headers=headers,
                    files={"file": ("photo.jpg", data, "image/jpeg")},
                )
                if response.status_code == 503 and response.json()["error"]["code"] == "media.busy":
                    # no decode slot within MEDIA_DECODE_WAIT_SECONDS: counted, tried again
                    busy.append(1)
                    queue.put_nowait(None)
                    await asyncio.sleep(0.5)
                    continue
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 201, response.text

        wall = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - wall
    stored = len(await objects.list_keys())
    media.photos.close()
    objects.close()
    await pool.close()
    latencies.sort()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "uploads": uploads,
        "concurrency": concurrency,
        "file_bytes": len(data),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(latencies[int(0.95 * (len(latencies) - 1))], 1),
        "max_ms": round(latencies[-1], 1),
        "uploads_per_second": round(uploads / wall, 2),
        "busy_answers": len(busy),
        "objects_stored": stored,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uploads", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    result = asyncio.run(run(args.uploads, args.concurrency))
    print(json.dumps(result, indent=2))
    RESULTS.parent.mkdir(exist_ok=True)
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    history.append(result)
    RESULTS.write_text(json.dumps(history, indent=2) + "\n")


if __name__ == "__main__":
    main()
