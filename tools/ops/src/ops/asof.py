"""`ops as-of <case-number> <timestamp>`: one application and its review as they stood at a moment,
folded from the events of the application's stream (application service) and of its review
stream (review service), never from projections.

    ops as-of MK2026000001 2026-03-05T10:00 [--json]

The rule for "as it stood at T": an event counts when its `recorded_at` is at or before T.
`recorded_at` is the time of the INSERT statement that stored the event (PostgreSQL's
`statement_timestamp()`), so it is commit time to within the length of the storing transaction:
an event whose transaction began its INSERT just before T and committed just after T is counted.
A time without an offset is Beijing time. Within a stream, events fold in stream order; the two
streams live in two databases, so the review fold reads the application's submission number to
know which round it is in (a round starts at awaiting 初审, like the review queue does). A claim
is a lease: it is shown as held from its ReviewClaimed until a release or decision is recorded,
even if its lease ran out meanwhile without a ReviewReleased(lapsed) being recorded.

Exit codes: 0 shown; 1 no such case (`case_not_found`) or T before the application's first event
(`not_yet`); 2 a malformed time (`bad_time`) or no DSN. A time in the future shows the present
state, with a note saying so.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from contracts.application import EXEMPTION_STREAM
from contracts.base import CertificateKind
from contracts.review import DECISION_STREAM
from ops.actions import parse_time
from ops.context import CHINA, EXIT_OK, OpsContext, OpsError, fetch
from ops.export import mask_personal
from ops.history import SUBMISSIONS, CaseNotFound, find_case

STATUS_LABELS = {
    "draft": "草稿 draft",
    "submitted": "已提交 submitted",
    "returned": "被退回 returned",
    "withdrawn": "已撤回 withdrawn",
    "decided": "已出结果 decided",
}
REVIEW_LABELS = {
    "not_submitted": "未提交 not submitted",
    "awaiting_point": "待确认点初审 awaiting 初审 (point)",
    "awaiting_province": "待省级复审 awaiting 复审 (province)",
    "returned": "已退回考生 returned",
    "decided": "已出结果 decided",
    "withdrawn": "考生已撤回 withdrawn",
}
STAGE_LABELS = {"confirmation_point": "初审(确认点)", "provincial": "复审(省级)"}
OUTCOME_LABELS = {"granted": "同意免考", "denied": "不同意"}

_COLUMNS = "stream_version, event_type, recorded_at, occurred_at, actor_kind, actor_id, payload"


@dataclass
class ApplicationState:
    """The application (免考申请) folded from its stream."""

    status: str = "draft"
    application_id: str = ""
    candidate_id: str | None = None
    window_id: str | None = None
    case_number: str | None = None
    submission_number: int | None = None
    confirmation_point_id: str | None = None
    plan: str | None = None
    major_codes: list[str] = field(default_factory=list)
    catalogue_version: str | None = None
    certificates: dict[str, dict[str, Any]] = field(default_factory=dict)
    declaration_accepted: bool | None = None
    last_return: dict[str, Any] | None = None
    withdrawal_reason: str | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)
    objection_deadline: str | None = None
    events: int = 0
    last_event: str | None = None
    last_event_at: datetime | None = None
    unhandled: list[str] = field(default_factory=list)

    def apply(self, event_type: str, payload: Mapping[str, Any], at: datetime) -> None:
        """Fold one event of the exemption stream."""
        self.events += 1
        self.last_event, self.last_event_at = event_type, at
        p = payload
        if event_type == "ApplicationDrafted":
            self.status = "draft"
            self._take(p, ("candidate_id", "window_id", "confirmation_point_id", "plan",
                           "major_codes", "catalogue_version"))  # fmt: skip
        elif event_type == "CertificateAdded":
            certificate = dict(p.get("certificate") or {})
            self.certificates[str(certificate.get("certificate_id"))] = certificate
        elif event_type == "CertificateRemoved":
            self.certificates.pop(str(p.get("certificate_id")), None)
        elif event_type in SUBMISSIONS:
            self.status = "submitted"
            self._take(p, ("candidate_id", "window_id", "confirmation_point_id", "plan",
                           "major_codes", "catalogue_version", "case_number",
                           "submission_number", "declaration_accepted"))  # fmt: skip
            self.certificates = {
                str(c.get("certificate_id")): dict(c) for c in p.get("certificates", [])
            }
            self.decisions = []
        elif event_type == "ApplicationReturnedToCandidate":
            self.status = "returned"
            self.last_return = {
                "stage": p.get("stage"),
                "reason": p.get("reason"),
                "submission_number": p.get("submission_number"),
                "at": at.isoformat(),
            }
        elif event_type == "ApplicationWithdrawn":
            self.status = "withdrawn"
            self.withdrawal_reason = p.get("reason")
        elif event_type == "ApplicationDecided":
            self.status = "decided"
            self.decisions = [dict(d) for d in p.get("decisions", [])]
            self.objection_deadline = p.get("objection_deadline")
        else:  # a newer event type: keep its scalar facts, and say it was not understood
            self.unhandled.append(event_type)
            self._take(p, ("case_number", "submission_number"))

    def _take(self, payload: Mapping[str, Any], keys: Sequence[str]) -> None:
        for key in keys:
            if key in payload and payload[key] is not None:
                value = payload[key]
                setattr(self, key, list(value) if isinstance(value, list) else value)

    def as_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "status": self.status,
            "application_id": self.application_id,
            "candidate_id": self.candidate_id,
            "window_id": self.window_id,
            "case_number": self.case_number,
            "submission_number": self.submission_number,
            "confirmation_point_id": self.confirmation_point_id,
            "plan": self.plan,
            "major_codes": self.major_codes,
            "catalogue_version": self.catalogue_version,
            "declaration_accepted": self.declaration_accepted,
            "certificates": [_certificate(c) for c in self.certificates.values()],
            "last_return": self.last_return,
            "withdrawal_reason": self.withdrawal_reason,
            "decisions": self.decisions,
            "objection_deadline": self.objection_deadline,
            "events": self.events,
            "last_event": self.last_event,
            "last_event_at": self.last_event_at.isoformat() if self.last_event_at else None,
            "unhandled_events": self.unhandled,
        }


def _certificate(c: Mapping[str, Any]) -> dict[str, Any]:
    """A certificate for display: what it is, its evidence reference, its photos and courses."""
    degree = c.get("degree") or None
    return {
        "certificate_id": c.get("certificate_id"),
        "kind": c.get("kind"),
        "route_id": c.get("route_id"),
        "degree": None if degree is None else {
            k: degree.get(k)
            for k in ("degree_ref", "institution", "major_name", "level", "graduation_year",
                      "holder_matches_candidate")
        },
        "certificate_check_ref": c.get("certificate_check_ref"),
        "photo_ids": list(c.get("photo_ids", [])),
        "courses": [
            {k: course.get(k) for k in ("course_code", "course_name", "major_code")}
            for course in c.get("courses", [])
        ],
    }  # fmt: skip


@dataclass
class ReviewState:
    """The review (审核) of the application's current submission, folded from review's stream."""

    status: str = "not_submitted"
    submission_number: int = 0
    claim: dict[str, Any] | None = None
    point_decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    point_reviewer: str | None = None
    point_note: str | None = None
    province_decisions: dict[str, dict[str, Any]] = field(default_factory=dict)
    decided_by: str | None = None
    returns: list[dict[str, Any]] = field(default_factory=list)
    events: int = 0
    unhandled: list[str] = field(default_factory=list)

    def start_round(self, submission_number: int) -> None:
        """A new submission: back to 初审, nothing decided, no claim."""
        self.submission_number = submission_number
        self.status = "awaiting_point"
        self.claim = None
        self.point_decisions, self.province_decisions = {}, {}
        self.point_reviewer = self.point_note = self.decided_by = None

    def apply(self, event_type: str, payload: Mapping[str, Any], at: datetime) -> None:
        """Fold one event of the review's decision stream."""
        self.events += 1
        p = payload
        number = int(p.get("submission_number") or 0)
        if event_type == "ApplicationReturned":  # every round's returns are kept
            self.returns.append({
                "submission_number": number,
                "stage": p.get("stage"),
                "reviewer_id": p.get("reviewer_id"),
                "reason": p.get("reason"),
                "course_notes": list(p.get("course_notes", [])),
                "at": at.isoformat(),
            })  # fmt: skip
        if number > self.submission_number:
            self.start_round(number)
        elif number < self.submission_number:
            return  # a stale round
        if event_type == "ReviewClaimed":
            self.claim = {
                "reviewer_id": p.get("reviewer_id"),
                "stage": p.get("stage"),
                "since": at.isoformat(),
            }
        elif event_type == "ReviewReleased":
            self.claim = None
        elif event_type == "InitialReviewCompleted":
            self.claim = None
            self.status = "awaiting_province"
            self.point_decisions = _by_course(p.get("decisions", []))
            self.point_reviewer = p.get("reviewer_id")
            self.point_note = p.get("note")
        elif event_type == "ApplicationReturned":
            self.claim = None
            self.status = "returned"
        elif event_type == "ApplicationApproved":
            self.claim = None
            if p.get("final"):
                self.status = "decided"
                self.province_decisions = _by_course(p.get("decisions", []))
                self.decided_by = p.get("reviewer_id")
            else:
                self.status = "awaiting_province"
                self.point_decisions = _by_course(p.get("decisions", []))
                self.point_reviewer = p.get("reviewer_id")
        else:
            self.unhandled.append(event_type)

    @property
    def stage(self) -> str | None:
        """The stage that acts now: 初审 or 复审, or none."""
        return {"awaiting_point": "confirmation_point", "awaiting_province": "provincial"}.get(
            self.status
        )

    def as_json(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "status": self.status,
            "stage": self.stage,
            "submission_number": self.submission_number or None,
            "claim": self.claim,
            "point_decisions": list(self.point_decisions.values()),
            "point_reviewer_id": self.point_reviewer,
            "point_note": self.point_note,
            "province_decisions": list(self.province_decisions.values()),
            "decided_by": self.decided_by,
            "returns": self.returns,
            "events": self.events,
            "unhandled_events": self.unhandled,
        }


def _by_course(decisions: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{d.get('major_code')}/{d.get('course_code')}": dict(d) for d in decisions}


@dataclass
class CaseAsOf:
    """The case at one moment."""

    case_number: str
    as_of: datetime
    future: bool
    application: ApplicationState
    review: ReviewState | None  # None when review's store is not configured

    def as_json(self) -> dict[str, Any]:
        """JSON-able form; personal numbers masked."""
        doc = {
            "case_number": self.case_number,
            "as_of": self.as_of.isoformat(),
            "rule": "events with recorded_at <= as_of",
            "future": self.future,
            "note": FUTURE_NOTE if self.future else None,
            "application": self.application.as_json(),
            "review": self.review.as_json() if self.review else None,
        }
        masked: dict[str, Any] = mask_personal(doc)
        return masked


FUTURE_NOTE = "所给时间在未来，显示的是当前状态 / the time is in the future: this is the state now"


class NotYet(LookupError):
    """The application had no event yet at that time; carries its first event's time."""

    def __init__(self, first: datetime) -> None:
        super().__init__(first.isoformat())
        self.first = first


async def case_as_of(
    dsns: Mapping[str, str], case_number: str, when: datetime, now: datetime | None = None
) -> CaseAsOf:
    """Fold the case's application and review streams up to `when` (recorded_at <= when)."""
    now = now or datetime.now(UTC)
    application_id, _ = await find_case(dsns["application"], case_number)
    by_stream = (
        f"SELECT {_COLUMNS} FROM eventkit.events WHERE stream_type = $1 AND stream_id = $2"
        " ORDER BY stream_version"
    )
    rows = await fetch(dsns["application"], by_stream, EXEMPTION_STREAM.stream_type, application_id)
    first = min(r["recorded_at"] for r in rows)
    if when < first:
        raise NotYet(first)
    application = ApplicationState(application_id=application_id)
    for row in rows:
        if row["recorded_at"] <= when:
            application.apply(row["event_type"], row["payload"], row["recorded_at"])
    review: ReviewState | None = None
    if "review" in dsns:
        review = ReviewState()
        if application.submission_number:
            review.start_round(application.submission_number)
        for row in await fetch(dsns["review"], by_stream, DECISION_STREAM.stream_type,
                                application_id):  # fmt: skip
            if row["recorded_at"] <= when:
                review.apply(row["event_type"], row["payload"], row["recorded_at"])
        if application.status == "withdrawn":
            review.status, review.claim = "withdrawn", None
        elif application.status == "draft" and not review.events:
            review.status = "not_submitted"
    return CaseAsOf(case_number, when, when > now, application, review)


def _when(text: str | None) -> str:
    if not text:
        return "-"
    return datetime.fromisoformat(text).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


def _decision_line(d: Mapping[str, Any]) -> str:
    outcome = OUTCOME_LABELS.get(str(d.get("outcome")), str(d.get("outcome")))
    reason = f"（{d['reason']}）" if d.get("reason") else ""
    return f"    {d.get('major_code')} {d.get('course_code')}  {outcome}{reason}"


def render_table(doc: Mapping[str, Any]) -> str:
    """The JSON form as labelled lines for the terminal (Beijing time)."""
    a, r = doc["application"], doc["review"]
    lines = [f"办件 {doc['case_number']}  截至 as of {_when(doc['as_of'])} (北京时间)"]
    if doc.get("note"):
        lines.append(f"注意: {doc['note']}")
    lines += [
        "── 申请 application ──",
        f"  状态 status:        {STATUS_LABELS.get(a['status'], a['status'])}",
        f"  申请 application:   {a['application_id']}",
        f"  考生 candidate:     {a['candidate_id'] or '-'}",
        f"  申请时段 window:    {a['window_id'] or '-'}",
        f"  提交次数 submission: {a['submission_number'] or '-'}",
        f"  确认点 point:       {a['confirmation_point_id'] or '-'}",
        f"  计划 plan:          {a['plan'] or '-'}",
        f"  专业 majors:        {' '.join(a['major_codes']) or '-'}",
        f"  证书 certificates:  {len(a['certificates'])}",
    ]
    for c in a["certificates"]:
        try:
            kind = CertificateKind(c["kind"]).label
        except ValueError:
            kind = str(c["kind"])
        lines.append(f"    · {kind} [{c['route_id']}] 照片 photos: {', '.join(c['photo_ids'])}")
        for course in c["courses"]:
            lines.append(
                f"        {course['major_code']} {course['course_code']} {course['course_name']}"
            )
    if a["last_return"]:
        ret = a["last_return"]
        lines.append(
            f"  最近退回 last return: {ret['reason']}"
            f" ({STAGE_LABELS.get(ret['stage'], ret['stage'])}, 第{ret['submission_number']}次提交,"
            f" {_when(ret['at'])})"
        )
    if a["withdrawal_reason"]:
        lines.append(f"  撤回原因 withdrawn: {a['withdrawal_reason']}")
    if a["decisions"]:
        lines.append("  免考结果 decisions:")
        lines += [_decision_line(d) for d in a["decisions"]]
    if a["unhandled_events"]:
        lines.append(f"  未识别事件 not folded: {', '.join(a['unhandled_events'])}")
    lines.append("── 审核 review ──")
    if r is None:
        lines.append("  未配置 review 数据库 / review's store is not configured: unknown")
        return "\n".join(lines)
    stage = STAGE_LABELS.get(r["stage"], "-") if r["stage"] else "-"
    lines += [
        f"  状态 status:        {REVIEW_LABELS.get(r['status'], r['status'])}",
        f"  阶段 stage:         {stage}",
        f"  审核轮次 round:     第{r['submission_number'] or '-'}次提交",
    ]
    claim = r["claim"]
    lines.append(
        "  领取人 claimed by:  -" if claim is None else
        f"  领取人 claimed by:  {claim['reviewer_id']}"
        f" ({STAGE_LABELS.get(claim['stage'], claim['stage'])}, 自 {_when(claim['since'])})"
    )  # fmt: skip
    if r["point_decisions"]:
        lines.append(f"  初审意见 point opinion (审核员 {r['point_reviewer_id']}):")
        lines += [_decision_line(d) for d in r["point_decisions"]]
    if r["point_note"]:
        lines.append(f"  初审备注 note: {r['point_note']}")
    if r["province_decisions"]:
        lines.append(f"  复审决定 provincial decision (审核员 {r['decided_by']}):")
        lines += [_decision_line(d) for d in r["province_decisions"]]
    lines.append(f"  退回记录 returns:    {len(r['returns'])}")
    for ret in r["returns"]:
        lines.append(
            f"    · 第{ret['submission_number']}次提交"
            f" {STAGE_LABELS.get(ret['stage'], ret['stage'])} {_when(ret['at'])}"
            f" 审核员 {ret['reviewer_id']}: {ret['reason']}"
        )
        for note in ret["course_notes"]:
            lines.append(f"        {note.get('course_code')}: {note.get('note')}")
    if r["unhandled_events"]:
        lines.append(f"  未识别事件 not folded: {', '.join(r['unhandled_events'])}")
    return "\n".join(lines)


def register(commands: Any) -> None:
    """`ops as-of <case-number> <timestamp> [--json]`."""
    parser = commands.add_parser(
        "as-of", help="某一时刻的申请与审核状态 a case as it stood at a moment, from the events"
    )
    parser.add_argument("case_number", help="办件编号, e.g. MK2026000001")
    parser.add_argument(
        "timestamp", help="ISO time, e.g. 2026-03-05T10:00 (Beijing) or 2026-03-05T02:00Z"
    )
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.set_defaults(handler=handle)


async def handle(ctx: OpsContext, args: argparse.Namespace) -> int:
    """Print the case as it stood at the given time."""
    ctx.dsn("application")
    ctx.touch("application")  # touched first, so a refused request is recorded too
    if "review" in ctx.dsns:
        ctx.touch("review")
    when = parse_time(args.timestamp.strip())
    try:
        case = await case_as_of(ctx.dsns, args.case_number, when)
    except CaseNotFound:
        raise OpsError("case_not_found", f"未找到办件 / no case {args.case_number}") from None
    except NotYet as exc:
        first = exc.first.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")
        raise OpsError(
            "not_yet",
            f"该时刻办件尚不存在（最早事件记录于 {first} 北京时间）"
            f" / the application did not exist yet at {when.isoformat()}",
        ) from None
    ctx.detail["as_of"] = when.isoformat()
    ctx.detail["events"] = case.application.events + (case.review.events if case.review else 0)
    if case.future:
        ctx.detail["future"] = True
    doc = case.as_json()
    print(json.dumps(doc, ensure_ascii=False, indent=2) if args.json else render_table(doc))
    return EXIT_OK
