"""The fault lane: the whole system under a seeded workload and a seeded schedule of faults,
then the checker (see fault_checker). Nothing acknowledged is lost, nothing happens twice,
every projection applied each stream in order, no event was dead-lettered for a transient error,
no client got a 500, no process needed a hand restart, and every fault was recovered from
within 30 s of its end.

    FAULTS_PROFILE=short|full  (default short: the run inside `make test`; `make test-faults`: full)
    FAULTS_SEED=<int>          (default 1)
    FAULTS_INJECTIONS=<n>      (fewer injections: for work on the lane itself)
    FAULTS_REPORT=<path>       (where the JSON report goes; default <run dir>/report.json)

The run's system lives in `.run/faults-<seed>` (logs under `logs/`), kept after the run.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import random
import shutil
import time
from pathlib import Path

import httpx
import pytest
from e2e_support import verify_every_projection
from fault_checker import (
    Findings,
    check_dead_letters,
    check_journeys,
    check_lost,
    check_order,
    fault_answers,
    stores,
)
from fault_injector import FULL, SHORT, Nemesis
from fault_people import people
from fault_system import ROOT, FaultSystem, fault_system, wait_settled
from fault_workload import Client, Journeys, Recorder, Urls

pytestmark = [pytest.mark.integration, pytest.mark.faults]

PROFILE = os.environ.get("FAULTS_PROFILE", "short")
SEED = int(os.environ.get("FAULTS_SEED", "1"))


@pytest.mark.timeout(5400 if PROFILE == "full" else 1500)
def test_nothing_acknowledged_is_lost_and_nothing_happens_twice() -> None:
    profile = FULL if PROFILE == "full" else SHORT
    if os.environ.get("FAULTS_INJECTIONS"):  # a smaller run, when working on the lane itself
        n = int(os.environ["FAULTS_INJECTIONS"])
        profile = dataclasses.replace(profile, injections=n, min_each=min(profile.min_each, n // 9))
    run_dir = ROOT / ".run" / f"faults-{PROFILE}-{SEED}"
    shutil.rmtree(run_dir, ignore_errors=True)
    persons = people(80 if PROFILE != "full" else 400, SEED)
    with fault_system(run_dir, persons) as system:
        recorder = Recorder()
        nemesis = Nemesis(system, profile, SEED)
        findings = Findings()
        journeys = asyncio.run(_whole(system, recorder, nemesis, persons, findings))
        fault_answers(findings, recorder, nemesis.injections)
        findings.hand_restarts = list(nemesis.hand_restarts)
        check_dead_letters(findings, system.running)
        listed = system.running.ops("projections", "--json")
        try:
            verify_every_projection(system.running, listed)
        except AssertionError as differs:
            findings.rebuild.append(str(differs)[:4000])
        report = {
            "profile": PROFILE,
            "seed": SEED,
            "journeys": len(journeys),
            "finished": sum(1 for j in journeys if j.decided or j.withdrawn),
            "answers": len(recorder.answers),
            "elapsed_s": round(recorder.now(), 1),
            **findings.as_json(),
            "injection_log": [
                {"n": i.number, "kind": i.kind, "where": i.where, "started": round(i.started, 1),
                 "ended": round(i.ended, 1), "recovery_s": i.recovered, "detail": i.detail}
                for i in nemesis.injections
            ],
        }  # fmt: skip
        path = Path(os.environ.get("FAULTS_REPORT", run_dir / "report.json"))
        path.write_text(json.dumps(report, ensure_ascii=False, indent=1, default=str))
        print(findings.table())
        print(f"report: {path}")
        failures = findings.failures()
        if failures:
            system.running.print_logs(20)
        assert not failures, "\n".join(failures)
        assert len(nemesis.injections) >= profile.injections, nemesis.injections


async def _whole(
    system: FaultSystem, recorder: Recorder, nemesis: Nemesis, persons: list, findings: Findings
) -> list:
    """The workload under the faults, then the system left to settle, then the checks that
    read the stores and the read models."""
    try:
        journeys = await _run(system, recorder, nemesis, persons, concurrency=6)
        settled, why = await wait_settled(system, timeout=180)
        if not settled:
            findings.lag.append(f"not settled 180 s after the last fault: {why}")
        await _check(findings, system, recorder, journeys)
        return journeys
    finally:
        await system.close()


async def _run(
    system: FaultSystem, recorder: Recorder, nemesis: Nemesis, persons: list, concurrency: int
) -> list:
    urls = Urls(
        identity=system.running.url("identity"),
        application=system.running.url("application"),
        credential=system.running.url("credential-verify"),
        media=system.running.url("media"),
        review=system.running.url("review"),
        chsi=system.running.url("chsi-sandbox"),
        sms=system.running.url("sms-sandbox"),
    )
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(timeout=20, limits=limits) as http:
        client = Client(http, recorder, urls, deadline=150)
        journeys = Journeys(client, system.running.dsn("identity"), rng=random.Random(SEED))
        await journeys.setup()
        faults_done = asyncio.Event()

        async def faults() -> None:
            try:
                await nemesis.run(recorder.started)
            finally:
                faults_done.set()

        async def drive() -> None:
            slots = asyncio.Semaphore(concurrency)
            tasks = []
            for person in persons:
                if faults_done.is_set() and len(tasks) >= 12:
                    break
                await slots.acquire()
                if faults_done.is_set() and len(tasks) >= 12:
                    slots.release()
                    break

                async def one(p=person) -> None:
                    try:
                        await journeys.run(p, withdraw=p.index % 7 == 3, send_back=p.index % 4 == 1)
                    finally:
                        slots.release()

                tasks.append(asyncio.create_task(one()))
                await asyncio.sleep(0.5)
            await asyncio.gather(*tasks)

        started = time.monotonic()
        await asyncio.gather(faults(), drive())
        print(f"workload and faults done in {time.monotonic() - started:.0f}s")
        return journeys.journeys


async def _check(
    findings: Findings, system: FaultSystem, recorder: Recorder, journeys: list
) -> None:
    events = await stores(system.running)
    await check_lost(findings, system.running, recorder, events)
    await check_journeys(findings, system.running, journeys)
    await check_order(findings, system.running, events)
