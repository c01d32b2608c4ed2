"""`ops`: the operators' command line (运维命令).

    ops history MK2026000001 [--json]

Each service's event store is read directly: its DSN comes from `OPS_PG_DSN_<SERVICE>`
(IDENTITY, APPLICATION, CREDENTIAL_VERIFY, MEDIA, REVIEW), else from the local stack's
`DEVSTACK_*` variables (`source .run/dev/stack.env`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from datetime import timedelta, timezone

from ops.history import SERVICES, CaseHistory, CaseNotFound, case_history

CHINA = timezone(timedelta(hours=8))
EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE = 0, 1, 2


def service_dsns(environ: os._Environ[str] | dict[str, str] | None = None) -> dict[str, str]:
    """Each service's DSN from OPS_PG_DSN_* or the local stack's variables."""
    env = dict(os.environ if environ is None else environ)
    dsns = {s: env[f"OPS_PG_DSN_{s.upper()}"] for s in SERVICES if f"OPS_PG_DSN_{s.upper()}" in env}
    if len(dsns) < len(SERVICES) and "DEVSTACK_PG_HOST" in env:
        from devstack.endpoints import Endpoints

        endpoints = Endpoints.from_env(env)
        for service in SERVICES:
            dsns.setdefault(service, endpoints.pg_dsn(service))
    return dsns


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ops", description="运维命令 ops")
    commands = parser.add_subparsers(dest="command", required=True)
    history = commands.add_parser(
        "history", help="一个办件在各服务中的完整经过 the story of one case, from the events"
    )
    history.add_argument("case_number", help="办件编号, e.g. MK2026000001")
    history.add_argument("--json", action="store_true", help="JSON instead of a table")
    return parser


async def _history(case_number: str, as_json: bool) -> int:
    dsns = service_dsns()
    if "application" not in dsns:
        print("缺少数据库连接 / no DSNs: set OPS_PG_DSN_* or source the stack's env file",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    try:
        history = await case_history(dsns, case_number)
    except CaseNotFound:
        print(f"未找到办件 / no case {case_number}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if as_json:
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


async def run(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "history":
        return await _history(args.case_number, args.json)
    return EXIT_USAGE  # pragma: no cover - argparse requires a command


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ops`."""
    return asyncio.run(run(argv))


if __name__ == "__main__":
    sys.exit(main())
