"""`ops actions`: what operators did, from the `OpsActionRecorded` events in each service's store.

ops actions [--service S] [--since 2026-11-28T00:00+08:00] [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any

from eventkit.operations import recorded_actions, service_key
from ops.context import CHINA, EXIT_OK, EXIT_USAGE, SERVICES, OpsContext, OpsError


def register(commands: Any) -> None:
    """`ops actions`."""
    parser = commands.add_parser("actions", help="运维操作记录 who ran which ops command, when")
    parser.add_argument("--service", default=None, help="one service (default: all)")
    parser.add_argument("--since", default=None, help="ISO time, e.g. 2026-11-28T08:00+08:00")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--json", action="store_true")
    parser.set_defaults(handler=handle)


def parse_time(text: str) -> datetime:
    """An ISO 8601 time; without an offset it is Beijing time."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise OpsError(
            "bad_time", f"时间格式不对 / not an ISO time: {text!r}", EXIT_USAGE
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=CHINA)


async def handle(ctx: OpsContext, args: argparse.Namespace) -> int:
    """The recorded actions, newest first, of one or every service."""
    if args.limit < 1 or args.limit > 10_000:
        raise OpsError("bad_limit", "--limit 须在 1 到 10000 之间", EXIT_USAGE)
    since = parse_time(args.since) if args.since else None
    services = [service_key(args.service)] if args.service else [
        s for s in SERVICES if s in ctx.dsns
    ]  # fmt: skip
    rows = []
    for service in services:
        for envelope in await recorded_actions(
            await ctx.pool(service), since=since, limit=args.limit
        ):
            rows.append(
                {
                    "service": service,
                    "at": envelope.occurred_at.isoformat(),
                    "operator": envelope.actor.id,
                    "correlation_id": str(envelope.correlation_id),
                    **envelope.payload,
                }
            )
    rows.sort(key=lambda r: r["at"], reverse=True)
    rows = rows[: args.limit]
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for r in rows:
            when = datetime.fromisoformat(r["at"]).astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S")
            print(
                f"{when}  {r['service']:<18} {r['operator']:<16} {r['outcome']:<8}"
                f" {r['command']} {json.dumps(r['arguments'], ensure_ascii=False)}"
            )
    return EXIT_OK
