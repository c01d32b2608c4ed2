"""`ops projections` and `ops rebuild`: replay a projection into a shadow schema, compare it with
the live one, and swap it in on request, while the service goes on serving.

    ops projections [--json]
    ops rebuild <service> <projection> [--from kafka|store] [--verify] [--swap] [--keep-shadow]

A rebuild from Kafka reads the projection's topics from their beginning up to the offsets the
live projection has reached, so the two can be compared row for row; the comparison itself
locks the live checkpoint for an instant and first brings the shadow up to the very same
offsets. `--verify` exits 1 when they differ. `--swap` makes the shadow live (the live consumer
resumes from the shadow's checkpoint); without it the shadow is dropped unless `--keep-shadow`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from eventkit.operations import ProjectionSpec, discover, service_key
from eventkit.replay import (
    Comparison,
    compare,
    compare_with_live,
    drop_shadow,
    live_offsets,
    rebuild_from_kafka,
    rebuild_from_store,
    shadow_name,
    swap,
)
from ops.context import EXIT_FAILED, EXIT_OK, EXIT_USAGE, OpsContext, OpsError


class ProgressBar:
    """Events applied so far, redrawn in place on a terminal, a line every 10 s otherwise."""

    def __init__(self, label: str, out: TextIO | None = None) -> None:
        self._label = label
        self._out = out or sys.stderr
        self._started = time.monotonic()
        self._last = 0.0
        self.count = 0

    def __call__(self, applied: int) -> None:
        self.count = applied
        now = time.monotonic()
        tty = self._out.isatty()
        if not tty and now - self._last < 10:
            return
        self._last = now
        rate = applied / max(now - self._started, 1e-6)
        text = f"{self._label}: {applied:>9,} 条事件  {rate:,.0f}/s"
        self._out.write(("\r" + text) if tty else (text + "\n"))
        self._out.flush()

    def done(self) -> None:
        seconds = time.monotonic() - self._started
        if self._out.isatty():
            self._out.write("\n")
        self._out.write(f"{self._label}: {self.count:,} 条事件, {seconds:.1f} s\n")
        self._out.flush()


async def specs_of(ctx: OpsContext, service: str) -> dict[str, ProjectionSpec]:
    """The projections of one service, by name, built on its pool."""
    offers = discover()
    key = service_key(service)
    if key not in offers:
        known = ", ".join(sorted(offers)) or "none"
        raise OpsError(
            "unknown_service", f"没有这个服务 / no service {service!r} (installed: {known})",
            EXIT_USAGE,
        )  # fmt: skip
    pool = await ctx.pool(key)
    return {spec.name: spec for spec in offers[key].projections(pool)}


def register(commands: Any) -> None:
    """`ops projections` and `ops rebuild`."""
    listing = commands.add_parser("projections", help="各服务的投影 every service's projections")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=handle_projections)

    parser = commands.add_parser(
        "rebuild", help="从事件重建投影 rebuild a projection into a shadow, compare, swap"
    )
    parser.add_argument("service", help="identity, application, credential-verify, media, review")
    parser.add_argument("projection", help="the projection's name (see `ops projections`)")
    parser.add_argument("--from", dest="source", choices=("kafka", "store"), default="kafka")
    parser.add_argument("--verify", action="store_true", help="exit 1 when the shadow differs")
    parser.add_argument("--swap", action="store_true", help="make the rebuilt shadow live")
    parser.add_argument("--keep-shadow", action="store_true", help="keep the shadow to inspect")
    parser.add_argument("--json", action="store_true", help="the report as JSON")
    parser.set_defaults(handler=handle_rebuild)


async def handle_projections(ctx: OpsContext, args: argparse.Namespace) -> int:
    """List every installed service's projections (built on no database)."""
    rows: list[dict[str, Any]] = []
    for key, offer in sorted(discover().items()):
        for spec in offer.described():
            rows.append(
                {
                    "service": key,
                    "projection": spec.name,
                    "topics": list(spec.projection.topics),
                    "rebuildable": spec.rebuildable,
                    "from_store": bool(spec.own_stream_types),
                    "consumer": spec.consumer,
                }
            )
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        for row in rows:
            flags = "" if row["rebuildable"] else "  (policy: not rebuilt)"
            print(f"{row['service']:<18} {row['projection']:<28} {' '.join(row['topics'])}{flags}")
    return EXIT_OK


async def handle_rebuild(ctx: OpsContext, args: argparse.Namespace) -> int:
    """Rebuild, compare, then swap or drop."""
    specs = await specs_of(ctx, args.service)
    spec = specs.get(args.projection)
    if spec is None:
        raise OpsError(
            "unknown_projection",
            f"{args.service} 没有投影 {args.projection!r} / known: {', '.join(sorted(specs))}",
            EXIT_USAGE,
        )
    if not spec.rebuildable:
        raise OpsError(
            "not_rebuildable",
            f"{spec.name} 是策略，重放会重复发出命令，不能重建 / a policy, never replayed",
            EXIT_USAGE,
        )
    if args.source == "store" and not spec.own_stream_types:
        raise OpsError(
            "not_own_streams",
            f"{spec.name} 读取其他服务的事件，只能从 Kafka 重建 / reads other services' topics:"
            " use --from kafka",
            EXIT_USAGE,
        )
    pool = await ctx.pool(args.service)
    projection = spec.projection
    bar = ProgressBar(f"重建 {args.service}/{spec.name} ({args.source})")
    if args.source == "store":
        applied = await rebuild_from_store(pool, projection, spec.own_stream_types, progress=bar)
    else:
        kafka = ctx.require_kafka()
        async with pool.acquire() as conn:
            until = await live_offsets(conn, projection)
        applied = await rebuild_from_kafka(pool, projection, kafka, until=until, progress=bar)
    bar.count = applied
    bar.done()
    if args.source == "kafka":
        comparison = await compare_with_live(pool, projection, ctx.require_kafka())
    else:
        comparison = await compare(pool, projection.name, shadow_name(projection))
    report = _report(args, spec, applied, comparison)
    swapped = False
    if args.swap:
        await swap(pool, projection, spec.own_stream_types or None)
        swapped = True
    elif not args.keep_shadow:
        await drop_shadow(pool, projection)
    report["swapped"] = swapped
    report["shadow_kept"] = bool(args.keep_shadow and not swapped)
    ctx.detail.update({k: report[k] for k in ("applied", "equal", "swapped", "differences")})
    _print(report, args.json)
    if args.verify and not comparison.equal:
        return EXIT_FAILED
    return EXIT_OK


def _report(
    args: argparse.Namespace, spec: ProjectionSpec, applied: int, comparison: Comparison
) -> dict[str, Any]:
    return {
        "service": service_key(args.service),
        "projection": spec.name,
        "source": args.source,
        "applied": applied,
        "tables": comparison.tables,
        "equal": comparison.equal,
        "differences": [
            {
                "table": d.table,
                "only_live": d.only_live,
                "only_shadow": d.only_shadow,
                "samples_live": _jsonable(d.samples_live),
                "samples_shadow": _jsonable(d.samples_shadow),
            }
            for d in comparison.differences
        ],
    }


def _jsonable(rows: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    return [json.loads(json.dumps(row, default=str, ensure_ascii=False)) for row in rows]


def _print(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
        return
    verdict = "一致 equal" if report["equal"] else "不一致 DIFFERENT"
    print(
        f"{report['service']}/{report['projection']}: {report['applied']} 条事件重放，"
        f"{len(report['tables'])} 张表，与在线投影{verdict}"
    )
    for diff in report["differences"]:
        print(
            f"  表 {diff['table']}: 仅在线 {diff['only_live']} 行, 仅重建 {diff['only_shadow']} 行"
        )
        for row in diff["samples_live"]:
            print(f"    在线: {row}")
        for row in diff["samples_shadow"]:
            print(f"    重建: {row}")
    if report["swapped"]:
        print("已切换：重建结果现为在线投影 / swapped in")
    elif report["shadow_kept"]:
        print(f"影子表保留在 schema {report['projection']}__shadow")
