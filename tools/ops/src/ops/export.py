"""`ops export <window-id-or-name> [--out DIR] [--force]`: one application window's decisions,
for the archive, read from the event stores (never from projections).

    ops export 2025年上半年免考申请 --out /archive/2025h1

A window is named by its id or by the name it was opened with (`application.window` stream).
Its applications are the exemption streams whose events name the window; a decided case is one
with an `ApplicationDecided` event (its last one counts: outcome and reason per course). The
deciding reviewer and the time of the decision come from review's final `ApplicationApproved`
for the same submission (else the decision's own time, reviewer left blank). The admission
ticket (准考证号) comes from identity's `CandidateRegistered` when identity's store is
configured; the candidate id is always written.

Three files go into DIR (default `./decisions-<window-id>`):
    decisions-<window-id>.csv   one row per course, UTF-8 with BOM (Excel reads the Chinese)
    decisions-<window-id>.json  one object per case
    SHA256SUMS                  `sha256sum -c` format, written last
Each is written to a temporary file in DIR, fsynced and renamed over its name, so a reader never
sees half a file; the files are created readable by their owner only (0600). Existing files are
kept unless `--force` (exit 2 otherwise). Any ID-card number found in a payload is masked
(`1401**********123X`) before it is written or printed. CSV cells starting with = + - @ get a
leading apostrophe so a spreadsheet never runs them as formulas.

Exit codes: 0 written; 1 no such window (`window_not_found`); 2 bad arguments, an ambiguous name,
existing files without --force, or no DSN.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import re
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contracts.application import EXEMPTION_STREAM, WINDOW_STREAM
from contracts.identity import CANDIDATE_STREAM
from contracts.review import DECISION_STREAM
from ops.context import CHINA, EXIT_FAILED, EXIT_OK, EXIT_USAGE, OpsContext, OpsError, fetch

_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

CSV_HEADER = (
    ("case_number", "办件编号"),
    ("admission_ticket_number", "准考证号"),
    ("candidate_id", "考生ID"),
    ("submission_number", "提交次数"),
    ("major_code", "专业代码"),
    ("course_code", "课程代码"),
    ("course_name", "课程名称"),
    ("certificate_kind", "证书类型"),
    ("outcome_label", "审核结论"),
    ("outcome", "结论代码"),
    ("reason", "不同意原因"),
    ("decided_at", "决定时间(北京)"),
    ("decided_by", "复审人"),
)
OUTCOME_LABELS = {"granted": "同意免考", "denied": "不同意"}


def _mask_id(match: re.Match[str]) -> str:
    value = match.group(0).upper()
    return f"{value[:4]}{'*' * 10}{value[-4:]}"


def mask_personal(value: Any) -> Any:
    """`value` (JSON-like) with every 18-character ID-card number in any string masked."""
    if isinstance(value, str):
        return _ID_NUMBER.sub(_mask_id, value)
    if isinstance(value, Mapping):
        return {k: mask_personal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_personal(v) for v in value]
    return value


class WindowNotFound(LookupError):
    """No window has this id or name."""


class AmbiguousWindow(LookupError):
    """Several windows have this name."""

    def __init__(self, ids: Sequence[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = list(ids)


@dataclass(frozen=True)
class DecisionExport:
    """The window and its decided cases, ready to write."""

    window: dict[str, Any]
    cases: list[dict[str, Any]]

    def rows(self) -> list[dict[str, Any]]:
        """One row per decided course."""
        out = []
        for case in self.cases:
            for course in case["courses"]:
                out.append(
                    {
                        **{k: case[k] for k in ("case_number", "admission_ticket_number",
                                                "candidate_id", "submission_number")},
                        **course,
                        "outcome_label": OUTCOME_LABELS.get(course["outcome"], course["outcome"]),
                        "decided_at": _beijing(case["decided_at"]),
                        "decided_by": case["decided_by"],
                    }
                )  # fmt: skip
        return out


def _beijing(text: str | None) -> str:
    if not text:
        return ""
    return datetime.fromisoformat(text).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")


async def find_window(dsn: str, window: str) -> dict[str, Any]:
    """The window named by id or by name, folded from its stream."""
    rows = await fetch(
        dsn,
        "SELECT stream_id, event_type, payload, recorded_at FROM eventkit.events"
        " WHERE stream_type = $1 ORDER BY stream_id, stream_version",
        WINDOW_STREAM.stream_type,
    )
    windows: dict[str, dict[str, Any]] = {}
    for row in rows:
        doc = windows.setdefault(row["stream_id"], {"window_id": row["stream_id"]})
        payload = row["payload"]
        if row["event_type"] == "ApplicationWindowOpened":
            doc.update({k: v for k, v in payload.items() if k != "window_id"})
            doc["closed_reason"] = None
        elif row["event_type"] == "ApplicationWindowClosed":
            doc["closed_reason"] = payload.get("reason")
    wanted = window.strip()
    try:
        key = str(uuid.UUID(wanted))
    except ValueError:
        key = None
    if key is not None and key in windows:
        return windows[key]
    named = [w for w in windows.values() if w.get("name") == wanted]
    if len(named) > 1:
        raise AmbiguousWindow(sorted(w["window_id"] for w in named))
    if not named:
        raise WindowNotFound(window)
    return named[0]


async def window_decisions(dsns: Mapping[str, str], window: str) -> DecisionExport:
    """Every decided case of the window, from the application, review (and identity) stores."""
    found = await find_window(dsns["application"], window)
    window_id = found["window_id"]
    rows = await fetch(
        dsns["application"],
        "SELECT stream_id, event_type, occurred_at, payload FROM eventkit.events"
        " WHERE stream_type = $1 AND stream_id IN (SELECT stream_id FROM eventkit.events"
        "  WHERE stream_type = $1 AND payload->>'window_id' = $2)"
        " ORDER BY stream_id, stream_version",
        EXEMPTION_STREAM.stream_type, window_id,
    )  # fmt: skip
    snapshots: dict[str, Mapping[str, Any]] = {}
    decided: dict[str, tuple[Mapping[str, Any], datetime]] = {}
    for row in rows:
        payload = row["payload"]
        if row["event_type"] in ("ApplicationSubmitted", "ApplicationResubmitted"):
            snapshots[row["stream_id"]] = payload
        elif row["event_type"] == "ApplicationDecided":
            decided[row["stream_id"]] = (payload, row["occurred_at"])
    ids = sorted(decided)
    finals: dict[str, tuple[Mapping[str, Any], datetime]] = {}
    if ids:
        for row in await fetch(
            dsns["review"],
            "SELECT stream_id, occurred_at, payload FROM eventkit.events WHERE stream_type = $1"
            " AND event_type = 'ApplicationApproved' AND stream_id = ANY($2::text[])"
            " AND (payload->>'final')::boolean ORDER BY stream_id, stream_version",
            DECISION_STREAM.stream_type, ids,
        ):  # fmt: skip
            finals[row["stream_id"]] = (row["payload"], row["occurred_at"])
    tickets: dict[str, str] = {}
    candidates = sorted({str(p.get("candidate_id")) for p, _ in decided.values()})
    if candidates and "identity" in dsns:
        for row in await fetch(
            dsns["identity"],
            "SELECT stream_id, payload->>'admission_ticket_number' AS ticket"
            " FROM eventkit.events WHERE stream_type = $1 AND event_type = 'CandidateRegistered'"
            " AND stream_id = ANY($2::text[])",
            CANDIDATE_STREAM.stream_type, candidates,
        ):  # fmt: skip
            if row["ticket"]:
                tickets[row["stream_id"]] = row["ticket"]
    cases = []
    for application_id in ids:
        payload, decided_at = decided[application_id]
        snapshot = snapshots.get(application_id, {})
        names: dict[tuple[str, str], tuple[str, str]] = {}
        for certificate in snapshot.get("certificates", []):
            for course in certificate.get("courses", []):
                names[(course.get("major_code"), course.get("course_code"))] = (
                    course.get("course_name", ""),
                    certificate.get("kind", ""),
                )
        final = finals.get(application_id)
        number = snapshot.get("submission_number")
        if final is not None and number is not None and final[0].get("submission_number") != number:
            final = None  # a final decision of another round: do not attribute this one to it
        courses = []
        for d in payload.get("decisions", []):
            name, kind = names.get((d.get("major_code"), d.get("course_code")), ("", ""))
            courses.append(
                {
                    "major_code": d.get("major_code"),
                    "course_code": d.get("course_code"),
                    "course_name": name,
                    "certificate_kind": kind,
                    "outcome": d.get("outcome"),
                    "reason": d.get("reason") or "",
                }
            )
        candidate_id = str(payload.get("candidate_id"))
        cases.append(
            {
                "case_number": payload.get("case_number"),
                "application_id": application_id,
                "candidate_id": candidate_id,
                "admission_ticket_number": tickets.get(candidate_id, ""),
                "submission_number": number,
                "major_codes": list(snapshot.get("major_codes", [])),
                "confirmation_point_id": snapshot.get("confirmation_point_id"),
                "decided_at": (final[1] if final else decided_at).isoformat(),
                "decided_by": str(final[0].get("reviewer_id")) if final else "",
                "objection_deadline": payload.get("objection_deadline"),
                "courses": courses,
            }
        )
    cases.sort(key=lambda c: (str(c["case_number"]), c["application_id"]))
    return DecisionExport(mask_personal(found), mask_personal(cases))


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def render_csv(export: DecisionExport) -> bytes:
    """The rows as CSV: UTF-8 with BOM, CRLF line ends, a Chinese header."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([label for _, label in CSV_HEADER])
    for row in export.rows():
        writer.writerow([_cell(row.get(key)) for key, _ in CSV_HEADER])
    return buffer.getvalue().encode("utf-8-sig")


def render_json(export: DecisionExport, exported_at: datetime) -> bytes:
    """The cases as one JSON document."""
    doc = {
        "window": export.window,
        "exported_at": exported_at.isoformat(),
        "case_count": len(export.cases),
        "course_count": sum(len(c["courses"]) for c in export.cases),
        "cases": export.cases,
    }
    return (json.dumps(doc, ensure_ascii=False, indent=2, default=str) + "\n").encode()


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync it, and rename it over `path`."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def register(commands: Any) -> None:
    """`ops export <window-id-or-name> [--out DIR] [--force]`."""
    parser = commands.add_parser(
        "export", help="导出申请时段的免考结果 a window's decisions as CSV + JSON + SHA256SUMS"
    )
    parser.add_argument("window", help="申请时段 id or name")
    parser.add_argument("--out", default=None, help="directory (default ./decisions-<window-id>)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    parser.set_defaults(handler=handle)


async def handle(ctx: OpsContext, args: argparse.Namespace) -> int:
    """Write the window's decisions and their checksums."""
    dsns = {"application": ctx.dsn("application"), "review": ctx.dsn("review")}
    ctx.touch("application")
    ctx.touch("review")
    if "identity" in ctx.dsns:
        dsns["identity"] = ctx.dsns["identity"]
        ctx.touch("identity")
    if not args.window.strip():
        raise OpsError(
            "bad_window", "请给出申请时段 id 或名称 / give a window id or name", EXIT_USAGE
        )
    try:
        export = await window_decisions(dsns, args.window)
    except WindowNotFound:
        raise OpsError(
            "window_not_found", f"未找到申请时段 / no window {args.window!r}", EXIT_FAILED
        ) from None
    except AmbiguousWindow as exc:
        raise OpsError(
            "ambiguous_window",
            f"多个申请时段同名，请用 id / several windows are named so: {', '.join(exc.ids)}",
            EXIT_USAGE,
        ) from None
    window_id = export.window["window_id"]
    out = Path(args.out) if args.out else Path(f"decisions-{window_id}")
    if out.exists() and not out.is_dir():
        raise OpsError("bad_out", f"不是目录 / not a directory: {out}", EXIT_USAGE)
    names = (f"decisions-{window_id}.csv", f"decisions-{window_id}.json", "SHA256SUMS")
    existing = [n for n in names if (out / n).exists()]
    ctx.detail.update({"window_id": window_id, "out": str(out.resolve())})
    if existing and not args.force:
        raise OpsError(
            "exists",
            f"文件已存在，加 --force 覆盖 / already there (use --force): {', '.join(existing)}",
            EXIT_USAGE,
        )
    out.mkdir(parents=True, exist_ok=True)
    contents = {
        names[0]: render_csv(export),
        names[1]: render_json(export, datetime.now(UTC)),
    }
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}
    contents[names[2]] = "".join(f"{sums[n]}  {n}\n" for n in names[:2]).encode()
    for name, data in contents.items():
        write_atomic(out / name, data)
    _fsync_dir(out)
    ctx.detail.update({"cases": len(export.cases), "sha256": sums})
    print(
        f"申请时段 {export.window.get('name', '')} ({window_id}): "
        f"{len(export.cases)} 个已决办件, {len(export.rows())} 门课程 → {out}"
    )
    for name in names[:2]:
        print(f"  {sums[name]}  {name}")
    return EXIT_OK
