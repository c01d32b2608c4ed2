"""Application service under peak-enrolment load: candidates draft, add a certificate and submit.

    devstack exec -- uv run python bench/application_submit.py [--candidates N] [--concurrency C]

The application API runs in-process (ASGI) on the stack's real PostgreSQL with the demo
catalogue active and an open window. Each candidate (registered, with a verified CET-4 check and
a photo in the evidence projection) does the wizard through HTTP: POST /api/applications, POST
…/certificates (CET4-NEW → 13124 for 530605), POST …/submit. Reported: journeys per second,
p50/p95/max per command, and the process's peak RSS. Results are appended to
bench/results/application_submit.json.
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

import asyncpg
import httpx

from application_service import bootstrap
from application_service.adapters import catalogue_store
from application_service.adapters.catalogue_files import DEMO_DIR, DEMO_VERSION, load_catalogue_dir
from application_service.adapters.evidence import EVIDENCE_SCHEMA
from application_service.domain.windows import ApplicationWindow
from application_service.entrypoints.api import attach, build_app
from devstack.endpoints import Endpoints
from devstack.testing import create_database
from eventkit.db import create_pool
from eventkit.envelope import Actor
from servicekit.auth import StaticKeys, TokenVerifier
from servicekit.signing import IDENTITY_ISSUER, Ed25519KeyPair, issue_token

RESULTS = Path(__file__).resolve().parent / "results" / "application_submit.json"


async def fresh_database(ep: Endpoints) -> str:
    return await create_database(ep, f"bench_app_{uuid.uuid4().hex[:8]}")


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[int(p * (len(ordered) - 1))], 1)


async def seed(pool: asyncpg.Pool, candidates: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, str]]:
    """Candidates, one verified CET-4 check and one photo each, straight into the projection."""
    now = datetime.now(UTC)
    evidence: dict[uuid.UUID, tuple[str, str]] = {}
    rows_c, rows_k, rows_p = [], [], []
    for i, cid in enumerate(candidates):
        check, photo = uuid.uuid4(), uuid.uuid4()
        evidence[cid] = (str(check), str(photo))
        rows_c.append((cid, f"考生{i}", "1401**********0000", now))
        rows_k.append((check, cid, "cet4", True, 480, now))
        rows_p.append((photo, cid, 1600, 1200, now))
    async with pool.acquire() as conn:
        await conn.copy_records_to_table(
            "candidates", schema_name=EVIDENCE_SCHEMA, records=rows_c,
            columns=["candidate_id", "name", "id_number_masked", "registered_at"],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "checks", schema_name=EVIDENCE_SCHEMA, records=rows_k,
            columns=["check_id", "candidate_id", "exam", "verified", "score", "checked_at"],
        )  # fmt: skip
        await conn.copy_records_to_table(
            "photos", schema_name=EVIDENCE_SCHEMA, records=rows_p,
            columns=["photo_id", "owner_id", "width", "height", "uploaded_at"],
        )  # fmt: skip
    return evidence


async def run(count: int, concurrency: int) -> dict[str, object]:
    ep = Endpoints.from_env()
    dsn = await fresh_database(ep)
    await bootstrap.prepare_database(dsn)
    pool = await create_pool(dsn, min_size=4, max_size=concurrency + 4)
    demo = load_catalogue_dir(DEMO_DIR, DEMO_VERSION)
    await catalogue_store.import_catalogue(pool, demo.catalogue, "ops:bench", {}, activate=True)
    service = bootstrap.wire(pool)
    now = datetime.now(UTC)
    window = ApplicationWindow(
        window_id=uuid.uuid4(), name="压测申请时段", opens_at=now - timedelta(days=1),
        applications_close_at=now + timedelta(days=5),
        point_review_close_at=now + timedelta(days=10),
        province_review_close_at=now + timedelta(days=20),
        results_published_at=now + timedelta(days=25),
    )  # fmt: skip
    await service.windows.open(window, Actor(kind="ops", id="bench"))
    candidates = [uuid.uuid4() for _ in range(count)]
    evidence = await seed(pool, candidates)
    keypair = Ed25519KeyPair.generate("bench")
    app = build_app()
    attach(app, service, TokenVerifier(StaticKeys({"bench": keypair.public_key}),
                                       issuer=IDENTITY_ISSUER))  # fmt: skip

    def headers(cid: uuid.UUID) -> dict[str, str]:
        token = issue_token(keypair, subject=str(cid), kind="candidate", roles=["candidate"],
                            issuer=IDENTITY_ISSUER, ttl=timedelta(hours=1))  # fmt: skip
        return {"Authorization": f"Bearer {token}"}

    timings: dict[str, list[float]] = {"draft": [], "certificate": [], "submit": []}
    queue: asyncio.Queue[uuid.UUID] = asyncio.Queue()
    for cid in candidates:
        queue.put_nowait(cid)

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://application", timeout=60
    ) as client:

        async def timed(step: str, call: object) -> httpx.Response:
            started = time.perf_counter()
            response: httpx.Response = await call  # type: ignore[misc]
            timings[step].append((time.perf_counter() - started) * 1000)
            return response

        async def journey(cid: uuid.UUID) -> None:
            h = headers(cid)
            check, photo = evidence[cid]
            draft = await timed("draft", client.post("/api/applications", headers=h, json={
                "window_id": str(window.window_id), "confirmation_point_id": "140105",
                "plan": "new", "major_codes": ["530605"]}))  # fmt: skip
            assert draft.status_code == 201, draft.text
            app_id = draft.json()["application_id"]
            added = await timed("certificate", client.post(
                f"/api/applications/{app_id}/certificates", headers=h, json={
                    "kind": "cet4_or_above", "route_id": "CET4-NEW",
                    "certificate_check_ref": check, "photo_ids": [photo],
                    "courses": [{"course_code": "13124", "major_code": "530605"}]}))  # fmt: skip
            assert added.status_code == 201, added.text
            done = await timed("submit", client.post(
                f"/api/applications/{app_id}/submit", headers=h,
                json={"declaration_accepted": True}))  # fmt: skip
            assert done.status_code == 200, done.text

        async def worker() -> None:
            while not queue.empty():
                await journey(queue.get_nowait())

        wall = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - wall
    events = await pool.fetchval("SELECT count(*) FROM eventkit.events")
    submitted = await pool.fetchval(
        "SELECT count(*) FROM application.applications WHERE status = 'submitted'"
    )
    await pool.close()
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "candidates": count,
        "concurrency": concurrency,
        "journeys_per_second": round(count / wall, 1),
        "commands_per_second": round(3 * count / wall, 1),
        **{f"{k}_p50_ms": round(statistics.median(v), 1) for k, v in timings.items()},
        **{f"{k}_p95_ms": pct(v, 0.95) for k, v in timings.items()},
        **{f"{k}_max_ms": round(max(v), 1) for k, v in timings.items()},
        "events": events,
        "submitted": submitted,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    result = asyncio.run(run(args.candidates, args.concurrency))
    print(json.dumps(result, indent=2, ensure_ascii=False))
    RESULTS.parent.mkdir(exist_ok=True)
    history = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    history.append(result)
    RESULTS.write_text(json.dumps(history, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
