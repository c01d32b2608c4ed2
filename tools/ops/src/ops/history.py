"""`ops history <case-number>`: the whole story of one application across every service, read
from the services' event stores (never from projections), in the order it happened.

It starts at the application's stream (found by its case number in a submission), then follows
the references its events carry: the candidate (identity), the photos and every staff view of
them (media), the certificate
checks and the candidate's degree verifications (credential-verify) and the review stream of the
same application (review). Each step has its time, service, event, actor, and its correlation
and causation ids, so one request's steps across services can be read together.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg

from contracts.application import EXEMPTION_STREAM
from contracts.credential import CERTIFICATE_STREAM, DEGREE_STREAM
from contracts.identity import CANDIDATE_STREAM
from contracts.media import PHOTO_STREAM, PHOTO_VIEW_STREAM_TYPE
from contracts.review import DECISION_STREAM
from ops.context import CHINA, EXIT_OK, SERVICES, OpsContext, OpsError, fetch

SUBMISSIONS = ("ApplicationSubmitted", "ApplicationResubmitted")
COLUMNS = (
    "event_id, stream_type, stream_id, stream_version, event_type, occurred_at, correlation_id,"
    " causation_id, actor_kind, actor_id, payload"
)


__all__ = ["SERVICES", "CaseHistory", "CaseNotFound", "Step", "case_history", "register"]


class CaseNotFound(LookupError):
    """No submitted application has this case number."""


@dataclass(frozen=True)
class Step:
    """One event of the case's story."""

    occurred_at: datetime
    service: str
    stream_type: str
    stream_id: str
    stream_version: int
    event_type: str
    actor: str
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None
    event_id: uuid.UUID
    summary: str

    def as_json(self) -> dict[str, Any]:
        """JSON-able form."""
        doc = asdict(self)
        doc["occurred_at"] = self.occurred_at.isoformat()
        for key in ("correlation_id", "causation_id", "event_id"):
            doc[key] = str(doc[key]) if doc[key] is not None else None
        return doc


@dataclass(frozen=True)
class CaseHistory:
    """The case and its steps, oldest first."""

    case_number: str
    application_id: str
    candidate_id: str
    steps: tuple[Step, ...]


def summary_of(event_type: str, payload: Mapping[str, Any]) -> str:
    """A short description of an event, without personal data beyond what events carry."""
    if event_type in SUBMISSIONS:
        courses = payload.get("course_codes", [])
        return (
            f"第{payload.get('submission_number')}次提交：{len(courses)} 门课程 {' '.join(courses)}"
        )
    if event_type in ("ApplicationReturned", "ApplicationReturnedToCandidate"):
        return f"退回：{payload.get('reason', '')}"
    if event_type in ("InitialReviewCompleted", "ApplicationApproved", "ApplicationDecided"):
        decisions = payload.get("decisions", [])
        granted = sum(1 for d in decisions if d.get("outcome") == "granted")
        return f"同意 {granted} 门，不同意 {len(decisions) - granted} 门"
    if event_type == "CertificateAdded":
        certificate = payload.get("certificate", {})
        codes = [c.get("course_code") for c in certificate.get("courses", [])]
        return f"{certificate.get('kind')} / {certificate.get('route_id')}：{' '.join(codes)}"
    if event_type in ("ReviewClaimed", "ReviewReleased"):
        return f"{payload.get('stage', '')} 第{payload.get('submission_number')}次提交"
    if event_type == "CertificateVerified":
        return f"{payload.get('exam')} 核验通过"
    if event_type == "CertificateVerificationFailed":
        return f"{payload.get('exam')} 核验未通过：{payload.get('reason_code')}"
    if event_type == "DegreesVerified":
        return f"学信网验证 {len(payload.get('degrees', []))} 条学历"
    if event_type == "PhotoViewed":
        return f"查看照片 ({payload.get('given')})，角色 {' '.join(payload.get('roles', []))}"
    if event_type == "PhotoUploaded":
        return f"{payload.get('width')}×{payload.get('height')}, {payload.get('size_bytes')} 字节"
    return ""


def _step(service: str, row: asyncpg.Record) -> Step:
    payload = row["payload"]
    return Step(
        occurred_at=row["occurred_at"],
        service=service,
        stream_type=row["stream_type"],
        stream_id=row["stream_id"],
        stream_version=row["stream_version"],
        event_type=row["event_type"],
        actor=f"{row['actor_kind']}:{row['actor_id']}",
        correlation_id=row["correlation_id"],
        causation_id=row["causation_id"],
        event_id=row["event_id"],
        summary=summary_of(row["event_type"], payload if isinstance(payload, dict) else {}),
    )


def _references(rows: Iterable[asyncpg.Record]) -> tuple[set[str], set[str]]:
    """Photo ids and certificate-check ids the application's events cite."""
    photos: set[str] = set()
    checks: set[str] = set()
    for row in rows:
        payload = row["payload"]
        certificates = list(payload.get("certificates", []))
        if "certificate" in payload:
            certificates.append(payload["certificate"])
        for certificate in certificates:
            photos.update(str(p) for p in certificate.get("photo_ids", []))
            if certificate.get("certificate_check_ref"):
                checks.add(str(certificate["certificate_check_ref"]))
    return photos, checks


async def find_case(application_dsn: str, case_number: str) -> tuple[str, dict[str, Any]]:
    """The application stream of a case number and its first submission's payload, from the
    application service's store; CaseNotFound when no submission carries it."""
    found = await fetch(
        application_dsn,
        "SELECT stream_id, payload FROM eventkit.events WHERE stream_type = $1"
        " AND event_type = ANY($2::text[]) AND payload->>'case_number' = $3"
        " ORDER BY stream_version LIMIT 1",
        EXEMPTION_STREAM.stream_type, list(SUBMISSIONS), case_number,
    )  # fmt: skip
    if not found:
        raise CaseNotFound(case_number)
    return found[0]["stream_id"], dict(found[0]["payload"])


async def case_history(dsns: Mapping[str, str], case_number: str) -> CaseHistory:
    """The story of `case_number` from the event stores of `dsns` (service name → DSN; a
    service left out is skipped)."""
    application_id, submission = await find_case(dsns["application"], case_number)
    candidate_id = str(submission["candidate_id"])
    steps: list[Step] = []
    by_stream = f"SELECT {COLUMNS} FROM eventkit.events WHERE stream_type = $1 AND stream_id = $2"
    application = await fetch(
        dsns["application"], by_stream, EXEMPTION_STREAM.stream_type, application_id
    )
    steps += [_step("application", r) for r in application]
    photos, checks = _references(application)
    queries: Sequence[tuple[str, str, tuple[Any, ...]]] = (
        ("review", by_stream, (DECISION_STREAM.stream_type, application_id)),
        ("identity", by_stream, (CANDIDATE_STREAM.stream_type, candidate_id)),
        # the photos, and who among the staff was given them (media's private view streams)
        ("media", f"SELECT {COLUMNS} FROM eventkit.events WHERE stream_type = ANY($1::text[])"
                  " AND stream_id = ANY($2::text[])",
         ([PHOTO_STREAM.stream_type, PHOTO_VIEW_STREAM_TYPE], sorted(photos))),
        ("credential_verify", f"SELECT {COLUMNS} FROM eventkit.events WHERE (stream_type = $1"
                              " AND stream_id = ANY($2::text[])) OR (stream_type = $3"
                              " AND payload->>'candidate_id' = $4)",
         (CERTIFICATE_STREAM.stream_type, sorted(checks), DEGREE_STREAM.stream_type,
          candidate_id)),
    )  # fmt: skip
    for service, sql, args in queries:
        if service in dsns:
            steps += [_step(service, r) for r in await fetch(dsns[service], sql, *args)]
    steps.sort(key=lambda s: (s.occurred_at, s.service, s.stream_version))
    return CaseHistory(case_number, application_id, candidate_id, tuple(steps))


def render_table(history: CaseHistory) -> str:
    """The history as a table for the terminal (Beijing time)."""
    lines = [
        f"办件 {history.case_number}  application {history.application_id}"
        f"  candidate {history.candidate_id}",
        f"{'时间 (北京)':<20} {'服务':<18} {'事件':<32} {'操作人':<48} {'关联':<8} 说明",
    ]
    for step in history.steps:
        when = step.occurred_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(
            f"{when:<22} {step.service:<18} {step.event_type:<32} {step.actor:<48}"
            f" {str(step.correlation_id)[:8]:<8} {step.summary}"
        )
    return "\n".join(lines)


def register(commands: Any) -> None:
    """`ops history <case-number> [--json]`."""
    parser = commands.add_parser(
        "history", help="一个办件在各服务中的完整经过 the story of one case, from the events"
    )
    parser.add_argument("case_number", help="办件编号, e.g. MK2026000001")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.set_defaults(handler=handle)


async def handle(ctx: OpsContext, args: argparse.Namespace) -> int:
    """Print the case's history."""
    ctx.dsn("application")
    for service in SERVICES:
        if service in ctx.dsns:
            ctx.touch(service)
    try:
        history = await case_history(ctx.dsns, args.case_number)
    except CaseNotFound:
        raise OpsError("case_not_found", f"未找到办件 / no case {args.case_number}") from None
    ctx.detail["steps"] = len(history.steps)
    if args.json:
        doc = {
            "case_number": history.case_number,
            "application_id": history.application_id,
            "candidate_id": history.candidate_id,
            "steps": [s.as_json() for s in history.steps],
        }
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        print(render_table(history))
    return EXIT_OK
