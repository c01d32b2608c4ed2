"""`ops`: the operators' command line (运维命令).

    ops history MK2026000001 [--json]
    ops projections [--json]
    ops rebuild review review_queue [--from kafka|store] [--verify] [--swap]
    ops dead-letters list|show|retry|discard ...
    ops actions [--service S] [--json]
    ops as-of MK2026000001 2026-03-05T10:00 [--json]
    ops lag [--service S] [--max-lag N] [--max-stall SECONDS] [--json]
    ops export <window-id-or-name> [--out DIR] [--force]

Each service's database comes from `OPS_PG_DSN_<SERVICE>` (IDENTITY, APPLICATION,
CREDENTIAL_VERIFY, MEDIA, REVIEW) and Kafka from `OPS_KAFKA_BOOTSTRAP`, else from the local
stack's `DEVSTACK_*` variables (`source .run/dev/stack.env`). The operator is `--operator`,
`OPS_OPERATOR` or the login name. Every command is recorded, as an `OpsActionRecorded` event,
in the store of each service whose database it opened, whether it succeeded or not.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from ops import actions, asof, deadletters, export, history, lag, rebuild
from ops.context import (
    EXIT_USAGE,
    OpsContext,
    OpsError,
    default_operator,
    kafka_connection,
    service_dsns,
)

COMMANDS = (history, rebuild, deadletters, actions, asof, lag, export)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command; each sets `handler`."""
    parser = argparse.ArgumentParser(prog="ops", description="运维命令 ops")
    parser.add_argument("--operator", default=None, help="操作人 who acts (default: OPS_OPERATOR)")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(commands)
    return parser


def _arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The command's arguments as JSON-able values, for the record."""
    out: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key in ("handler", "operator", "command", "action"):
            continue
        if isinstance(value, datetime | date):
            value = value.isoformat()
        elif value is not None and not isinstance(value, str | int | float | bool | list):
            value = str(value)
        out[key] = value
    return out


async def run(argv: Sequence[str] | None = None) -> int:
    """Run one command, record it, and return its exit code."""
    args = build_parser().parse_args(argv)
    operator = (args.operator or default_operator()).strip()
    if not operator:
        print("错误 [no_operator] 请用 --operator 或 OPS_OPERATOR 指明操作人", file=sys.stderr)
        return EXIT_USAGE
    try:
        kafka = kafka_connection()
    except OpsError as exc:
        print(f"错误 [{exc.code}] {exc}", file=sys.stderr)
        return exc.exit_code
    ctx = OpsContext(service_dsns(), operator, kafka)
    name = args.command if not getattr(args, "action", None) else f"{args.command} {args.action}"
    try:
        try:
            code: int = await args.handler(ctx, args)
        except OpsError as exc:
            print(f"错误 [{exc.code}] {exc}", file=sys.stderr)
            ctx.detail.setdefault("error", exc.code)
            await _record(ctx, name, args, "refused" if exc.exit_code == EXIT_USAGE else "failed")
            return exc.exit_code
        except Exception as exc:
            ctx.detail.setdefault("error", type(exc).__name__)
            await _record(ctx, name, args, "failed")
            raise
        await _record(ctx, name, args, "ok" if code == 0 else "failed")
        return code
    finally:
        await ctx.close()


async def _record(ctx: OpsContext, name: str, args: argparse.Namespace, outcome: Any) -> None:
    try:
        await ctx.record(ctx.touched, name, _arguments(args), outcome, ctx.detail)
    except Exception as exc:  # the database is what failed: say so, do not hide the first error
        print(f"警告 [not_recorded] 操作未能记录 / the action was not recorded: {exc}",
              file=sys.stderr)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `ops`."""
    return asyncio.run(run(argv))


if __name__ == "__main__":
    sys.exit(main())
