"""The fault lane's checker, run after the system settled (in the spirit of Jepsen's checkers):

- **lost**: every acknowledged (2xx) command is in its service's event store, and what it made
  is in the read models the others keep of it;
- **duplicated**: every event took effect once in every consuming projection (one review input
  per submission, one queue case per application, one pin per photo and application, one
  candidate per registration, one case number per application, each decision once);
- **out of order**: per stream, each projection applied the events in stream order;
- **dead letters** by cause, transient ones separately (there must be none);
- **lag**: every relay and every projection caught up (`ops lag`'s measure, by the harness);
- **rebuild**: every projection rebuilt from Kafka (or its store) equals the live one;
- **answers** clients got while each fault lasted, and any 500 at all.
"""

from __future__ import annotations

import itertools
import json
import statistics
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from e2e_support import RunningSystem
from fault_injector import KINDS, Injection
from fault_workload import Journey, Recorder

STORE_OF = {
    "registered": "identity",
    "degree_qr": "credential-verify",
    "photo": "media",
    "certificate_check": "credential-verify",
    "draft": "application",
    "certificate": "application",
    "submit": "application",
    "resubmit": "application",
    "withdraw": "application",
    "review_return": "review",
    "review_initial-review": "review",
    "review_approve": "review",
}
# The acknowledged command's stream id, by kind (the stream its events are in).
STREAM_KEY = {
    "registered": "candidate_id",
    "degree_qr": "authorization_id",
    "photo": "photo_id",
    "certificate_check": "check_id",
}
SERVICES = ("identity", "application", "credential-verify", "media", "review")


@dataclass
class Findings:
    """What the checker found; empty lists and zero counts are a pass."""

    acknowledged: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)
    dead_letters: Counter[str] = field(default_factory=Counter)
    transient_dead_letters: int = 0
    lag: list[str] = field(default_factory=list)
    rebuild: list[str] = field(default_factory=list)
    answers_500: int = 0
    unfinished: list[str] = field(default_factory=list)
    hand_restarts: list[str] = field(default_factory=list)
    recovery: dict[str, list[float | None]] = field(default_factory=dict)
    answers_during: dict[str, Counter[str]] = field(default_factory=dict)
    injections: Counter[str] = field(default_factory=Counter)

    def failures(self) -> list[str]:
        out = []
        for name in ("lost", "duplicated", "out_of_order", "lag", "rebuild", "unfinished",
                     "hand_restarts"):  # fmt: skip
            items = getattr(self, name)
            if items:
                out.append(f"{name}: {len(items)}: " + "; ".join(items[:10]))
        if self.transient_dead_letters:
            out.append(f"transient dead letters: {self.transient_dead_letters}")
        if sum(self.dead_letters.values()):
            out.append(f"dead letters: {dict(self.dead_letters)}")
        if self.answers_500:
            out.append(f"500 answers: {self.answers_500}")
        slow = {k: [r for r in v if r is None or r > 30] for k, v in self.recovery.items()}
        slow = {k: v for k, v in slow.items() if v}
        if slow:
            out.append(f"recovery over 30 s (None: never): {slow}")
        return out

    def table(self) -> str:
        """The reliability table of the run (markdown)."""
        lines = [
            "| fault kind | injections | recovery p50 (s) | recovery max (s)"
            " | answers while it lasted |",
            "|---|---|---|---|---|",
        ]
        for kind in KINDS:
            times = [t for t in self.recovery.get(kind, []) if t is not None]
            p50 = f"{statistics.median(times):.1f}" if times else "-"
            worst = f"{max(times):.1f}" if times else "-"
            if None in self.recovery.get(kind, []):
                worst = "never"
            answers = ", ".join(
                f"{k} ×{n}" for k, n in sorted(self.answers_during.get(kind, Counter()).items())
            )
            lines.append(f"| {kind} | {self.injections[kind]} | {p50} | {worst} | {answers} |")
        lines += [
            "",
            f"acknowledged writes {self.acknowledged}; lost {len(self.lost)}; duplicated"
            f" {len(self.duplicated)}; out of order {len(self.out_of_order)}; dead letters"
            f" {dict(self.dead_letters) or 0} (transient {self.transient_dead_letters});"
            f" rebuild differences {len(self.rebuild)}; hand restarts {len(self.hand_restarts)};"
            f" 500 answers {self.answers_500}; unfinished journeys {len(self.unfinished)}",
        ]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        return {
            "acknowledged": self.acknowledged,
            "lost": self.lost,
            "duplicated": self.duplicated,
            "out_of_order": self.out_of_order,
            "dead_letters": dict(self.dead_letters),
            "transient_dead_letters": self.transient_dead_letters,
            "lag": self.lag,
            "rebuild": self.rebuild,
            "answers_500": self.answers_500,
            "unfinished": self.unfinished,
            "hand_restarts": self.hand_restarts,
            "injections": dict(self.injections),
            "recovery": self.recovery,
            "answers_during": {k: dict(v) for k, v in self.answers_during.items()},
        }


def fault_answers(findings: Findings, recorder: Recorder, injections: list[Injection]) -> None:
    """Per fault kind, the answers clients got from a fault's start to its recovery; and the
    500s of the whole run (there must be none)."""
    findings.answers_500 = sum(1 for a in recorder.answers if a.status == 500)
    for injection in injections:
        findings.injections[injection.kind] += 1
        findings.recovery.setdefault(injection.kind, []).append(injection.recovered)
        until = injection.ended + (injection.recovered or 0.0)
        seen = findings.answers_during.setdefault(injection.kind, Counter())
        for answer in recorder.answers:
            if injection.started <= answer.at <= until:
                seen["no answer" if answer.status is None else str(answer.status)] += 1


async def _fetch(dsn: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def stores(running: RunningSystem) -> dict[str, dict[uuid.UUID, tuple[str, str, int, str]]]:
    """Every service's events: event_id -> (stream_type, stream_id, version, event_type)."""
    out: dict[str, dict[uuid.UUID, tuple[str, str, int, str]]] = {}
    for service in SERVICES:
        rows = await _fetch(
            running.dsn(service),
            "SELECT event_id, stream_type, stream_id, stream_version, event_type"
            " FROM eventkit.events",
        )
        out[service] = {
            r["event_id"]: (r["stream_type"], r["stream_id"], r["stream_version"], r["event_type"])
            for r in rows
        }
    return out


async def check_lost(
    findings: Findings, running: RunningSystem, recorder: Recorder,
    events: dict[str, dict[uuid.UUID, tuple[str, str, int, str]]],
) -> None:  # fmt: skip
    """Every acknowledged command's stream is in its store."""
    streams: dict[str, set[str]] = {
        s: {stream_id for (_, stream_id, _, _) in e.values()} for s, e in events.items()
    }
    findings.acknowledged = len(recorder.acks)
    # CHSI authorisations are state beside credential-verify's store, not a stream of it
    authorizations = {
        str(r["authorization_id"])
        for r in await _fetch(
            running.dsn("credential-verify"),
            "SELECT authorization_id FROM credential.authorizations",
        )
    }
    for ack in recorder.acks:
        if ack.kind == "degree_qr":
            if ack.ids["authorization_id"] not in authorizations:
                findings.lost.append(f"degree authorisation {ack.ids['authorization_id']} lost")
            continue
        store = STORE_OF[ack.kind]
        key = STREAM_KEY.get(ack.kind, "application_id")
        stream_id = ack.ids[key]
        found = stream_id in streams[store]
        if not found and store == "review":  # a case stream is keyed by more than the id
            found = any(stream_id in sid for sid in streams[store])
        if not found:
            findings.lost.append(f"{ack.kind} {stream_id} (person {ack.person}) not in {store}")


async def check_journeys(
    findings: Findings, running: RunningSystem, journeys: list[Journey]
) -> None:
    """What the finished journeys must have left in the read models, each thing once."""
    for j in journeys:
        if j.failed:
            findings.unfinished.append(f"person {j.person.index}: {j.failed}")
    done = [j for j in journeys if j.application_id]
    applications = [uuid.UUID(j.application_id) for j in done]
    candidates = [uuid.UUID(j.candidate_id) for j in journeys if j.candidate_id]
    cv = await _fetch(
        running.dsn("credential-verify"),
        "SELECT candidate_id, count(*) AS n FROM credential_candidates.candidates"
        " WHERE candidate_id = ANY($1::uuid[]) GROUP BY candidate_id",
        candidates,
    )
    known = {r["candidate_id"]: r["n"] for r in cv}
    for c in candidates:
        if known.get(c, 0) != 1:
            (findings.lost if c not in known else findings.duplicated).append(
                f"credential-verify knows candidate {c} {known.get(c, 0)} times"
            )
    rows = await _fetch(
        running.dsn("review"),
        "SELECT application_id, envelope FROM review_submissions.inputs"
        " WHERE application_id = ANY($1::uuid[])",
        applications,
    )
    kinds = Counter((r["application_id"], _event_type(r["envelope"])) for r in rows)
    queued = Counter(
        r["application_id"]
        for r in await _fetch(
            running.dsn("review"),
            "SELECT application_id FROM review_queue.cases WHERE application_id = ANY($1::uuid[])",
            applications,
        )
    )
    pins = Counter(
        (r["photo_id"], r["application_id"])
        for r in await _fetch(
            running.dsn("media"),
            "SELECT photo_id, application_id FROM media_usage.pins"
            " WHERE application_id = ANY($1::uuid[])",
            applications,
        )
    )
    for j in done:
        app = uuid.UUID(j.application_id)
        submitted = kinds[(app, "ApplicationSubmitted")]
        if j.case_number or j.decided or j.withdrawn:
            if submitted != 1:
                bucket = findings.lost if submitted == 0 else findings.duplicated
                bucket.append(f"review has {submitted} ApplicationSubmitted of {app}")
            if queued[app] != 1:
                bucket = findings.lost if queued[app] == 0 else findings.duplicated
                bucket.append(f"review queue has {queued[app]} cases of {app}")
            pin = pins[(uuid.UUID(j.photo_id), app)]
            if pin != 1:
                bucket = findings.lost if pin == 0 else findings.duplicated
                bucket.append(f"media has {pin} pins of photo {j.photo_id} for {app}")
        resubmitted = kinds[(app, "ApplicationResubmitted")]
        if resubmitted != (1 if j.returned else 0):
            findings.duplicated.append(f"review has {resubmitted} ApplicationResubmitted of {app}")
    # one case number per application, no number twice
    numbers = await _fetch(
        running.dsn("application"),
        "SELECT stream_id, payload->>'case_number' AS number FROM eventkit.events"
        " WHERE event_type = 'ApplicationSubmitted'",
    )
    by_number = defaultdict(set)
    for r in numbers:
        by_number[r["number"]].add(r["stream_id"])
    for number, apps in by_number.items():
        if number and len(apps) > 1:
            findings.duplicated.append(f"case number {number} given to {len(apps)} applications")


async def check_order(
    findings: Findings, running: RunningSystem,
    events: dict[str, dict[uuid.UUID, tuple[str, str, int, str]]],
) -> None:  # fmt: skip
    """Per stream, each projection applied its events in stream order (by the inbox's
    applied_at, a transaction's time: events of one batch share it and are applied in order)."""
    every: dict[uuid.UUID, tuple[str, str, int, str]] = {}
    for e in events.values():
        every.update(e)
    for service in SERVICES:
        schemas = await _fetch(
            running.dsn(service),
            "SELECT table_schema FROM information_schema.tables WHERE table_name = '_inbox'",
        )
        for row in schemas:
            schema = row["table_schema"]
            if schema.endswith("__shadow"):
                continue
            applied = await _fetch(
                running.dsn(service), f'SELECT event_id, applied_at FROM "{schema}"._inbox'
            )
            per_stream: dict[tuple[str, str], list[tuple[int, Any]]] = defaultdict(list)
            for r in applied:
                known = every.get(r["event_id"])
                if known is None:
                    continue
                stream_type, stream_id, version, _ = known
                per_stream[(stream_type, stream_id)].append((version, r["applied_at"]))
            for stream, items in per_stream.items():
                items.sort()
                times = [t for _, t in items]
                if any(b < a for a, b in itertools.pairwise(times)):
                    findings.out_of_order.append(f"{service}.{schema}: {stream[0]}/{stream[1]}")


def check_dead_letters(findings: Findings, running: RunningSystem) -> None:
    listed = running.ops("dead-letters", "list", "--status", "all", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    for letter in json.loads(listed.stdout or "[]"):
        cause = str(letter.get("error_type"))
        findings.dead_letters[cause] += 1
        if _transient_name(cause):
            findings.transient_dead_letters += 1


_TRANSIENT_NAMES = (
    "Connection", "Interface", "Timeout", "SerializationError", "DeadlockDetected",
    "LockNotAvailable", "QueryCanceled", "CannotConnectNow", "AdminShutdown", "OSError",
    "TooManyConnections", "CrashShutdown",
)  # fmt: skip


def _transient_name(error_type: str) -> bool:
    """Whether a dead letter's recorded error type names a transient failure."""
    return any(n in error_type for n in _TRANSIENT_NAMES)


def _event_type(envelope: Any) -> str:
    doc = json.loads(envelope) if isinstance(envelope, str) else envelope
    return str(doc["event_type"])
