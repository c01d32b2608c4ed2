"""`ops dead-letters`: the events a service's consumers could not apply, kept with their error.

    ops dead-letters list [--service S] [--consumer C] [--status unresolved|open|held|...|all]
                          [--json]
    ops dead-letters show <service> <id> [--json]
    ops dead-letters retry <service> <id>      (after a fix: apply it again, exactly once)
    ops dead-letters discard <service> <id> [--apply-held]   (ops decided it must never apply)

Retry goes through the projection's inbox, so an event applied meanwhile is not applied twice;
a failing retry leaves the letter open and says why.

A dead letter parks its stream for its consumer (ADR 0018): the stream's later events are
listed as `held`, each with the head letter it waits for (`held_by`). They are not errors and
are not retried on their own: retrying the head applies it and then them, in order, and unparks
the stream (a held event that fails becomes the new head). Discarding a head with held events
needs `--apply-held` (the head is closed unapplied, the held events apply). The default listing
shows open and held letters.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from eventkit.deadletters import (
    DeadLetter,
    DeadLetterError,
    RetryOutcome,
    discard,
    list_dead_letters,
    retry_letter,
)
from eventkit.operations import service_key
from ops.context import EXIT_OK, EXIT_USAGE, SERVICES, OpsContext, OpsError
from ops.rebuild import specs_of

STATUSES = ("unresolved", "open", "held", "retried", "discarded", "all")


def register(commands: Any) -> None:
    """`ops dead-letters list|show|retry|discard`."""
    parser = commands.add_parser("dead-letters", help="死信 events consumers could not apply")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list dead letters, oldest first")
    listing.add_argument("--service", default=None, help="one service (default: all)")
    listing.add_argument("--consumer", default=None)
    listing.add_argument(
        "--status", choices=STATUSES, default="unresolved", help="default: open and held"
    )
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=handle_list)
    for name, help_text, handler in (
        ("show", "one dead letter with its error and event", handle_show),
        ("retry", "apply it again after a fix", handle_retry),
        ("discard", "close it without applying", handle_discard),
    ):
        one = actions.add_parser(name, help=help_text)
        one.add_argument("service")
        one.add_argument("id", type=int)
        if name == "show":
            one.add_argument("--json", action="store_true")
        if name == "discard":
            one.add_argument(
                "--apply-held",
                action="store_true",
                help="a head letter: discard it and apply the events held behind it",
            )
        one.set_defaults(handler=handler)


def _as_json(service: str, letter: DeadLetter, *, with_event: bool) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "service": service,
        "id": letter.id,
        "consumer": letter.consumer,
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "event_id": letter.event_id,
        "event_type": letter.event_type,
        "error_type": letter.error_type,
        "failed_at": letter.failed_at.isoformat(),
        "status": letter.status,
        "stream": None if letter.stream_id is None else f"{letter.stream_type}/{letter.stream_id}",
        "held_by": letter.held_by,
        "parks_stream": letter.parks_stream,
    }
    if with_event:
        doc["error"] = letter.error
        raw = letter.raw_value or b""
        try:
            doc["event"] = json.loads(raw)
        except ValueError:
            doc["event_raw"] = raw.decode("utf-8", errors="replace")
    return doc


async def _letters(
    ctx: OpsContext, service: str, consumer: str | None, status: str
) -> list[DeadLetter]:
    pool = await ctx.pool(service)
    return await list_dead_letters(
        pool,
        consumer=consumer,
        status=None if status == "all" else status,  # type: ignore[arg-type]
    )


async def handle_list(ctx: OpsContext, args: argparse.Namespace) -> int:
    """Dead letters of one service or of every configured one."""
    services = [service_key(args.service)] if args.service else [
        s for s in SERVICES if s in ctx.dsns
    ]  # fmt: skip
    rows = []
    for service in services:
        for letter in await _letters(ctx, service, args.consumer, args.status):
            rows.append(_as_json(service, letter, with_event=False))
    ctx.detail["count"] = len(rows)
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    elif not rows:
        print("没有死信 / no dead letters")
    else:
        for r in rows:
            if r["held_by"] is not None and r["status"] == "held":
                note = f"  等待 waits for #{r['held_by']}"
            elif r["parks_stream"]:
                note = f"  阻塞流 parks {r['stream']}"
            else:
                note = ""
            print(
                f"{r['service']:<18} #{r['id']:<6} {r['status']:<9} {r['consumer']:<36}"
                f" {r['topic']}[{r['partition']}]@{r['offset']}  {r['event_type'] or '?'}"
                f"  {r['error_type']}  {r['failed_at']}{note}"
            )
    return EXIT_OK


async def _one(ctx: OpsContext, service: str, letter_id: int) -> DeadLetter:
    for letter in await _letters(ctx, service, None, "all"):
        if letter.id == letter_id:
            return letter
    raise OpsError("no_dead_letter", f"{service} 没有死信 #{letter_id} / no such dead letter")


async def handle_show(ctx: OpsContext, args: argparse.Namespace) -> int:
    """One dead letter with its error and the event."""
    service = service_key(args.service)
    letter = await _one(ctx, service, args.id)
    doc = _as_json(service, letter, with_event=True)
    if args.json:
        print(json.dumps(doc, ensure_ascii=False, indent=2))
    else:
        for key, value in doc.items():
            if key in ("error", "event", "event_raw"):
                continue
            print(f"{key:<11} {value}")
        print("error:\n" + str(doc["error"]))
        event = doc.get("event", doc.get("event_raw"))
        print("event:\n" + json.dumps(event, ensure_ascii=False, indent=2))
    return EXIT_OK


async def _live_spec(ctx: OpsContext, service: str, letter: DeadLetter, why: str) -> Any:
    """The live projection whose consumer failed `letter`; a usage error when there is none."""
    specs = {spec.consumer: spec for spec in (await specs_of(ctx, service)).values()}
    spec = specs.get(letter.consumer)
    if spec is None:
        sep = "" if why.startswith(":") else " "
        raise OpsError(
            "unknown_consumer",
            f"死信 #{letter.id} 属于 {letter.consumer}，不是 {service} 的投影 / not a live"
            f" projection's consumer{sep}{why}",
            EXIT_USAGE,
        )
    return spec


async def handle_retry(ctx: OpsContext, args: argparse.Namespace) -> int:
    """Apply a dead letter again into the projection that failed it."""
    service = service_key(args.service)
    letter = await _one(ctx, service, args.id)
    spec = await _live_spec(ctx, service, letter, "(a rebuild's letters go away with its shadow)")
    try:
        outcome = await retry_letter(
            await ctx.pool(service), spec.projection, letter.id, ctx.operator
        )
    except DeadLetterError as exc:
        raise OpsError("retry_failed", f"重试未成功，死信仍未关闭 / {exc}") from None
    ctx.detail.update({"id": letter.id, "event_id": letter.event_id, "applied": outcome.applied})
    _held_detail(ctx, outcome)
    print(
        f"死信 #{letter.id} 已重试："
        + ("已应用 applied" if outcome.applied else "此前已应用 duplicate")
    )
    _print_held(outcome)
    return EXIT_OK


def _held_detail(ctx: OpsContext, outcome: RetryOutcome | None) -> None:
    if outcome is None:
        return
    ctx.detail.update(
        {
            "held_applied": outcome.held_applied,
            "held_duplicates": outcome.held_duplicates,
            "unparked": outcome.unparked,
            "parked_at": outcome.parked_at,
        }
    )


def _print_held(outcome: RetryOutcome | None) -> None:
    if outcome is None:
        return
    if outcome.held_applied or outcome.held_duplicates:
        print(
            f"其后暂扣的事件 held events: 已应用 applied {outcome.held_applied},"
            f" 此前已应用 duplicates {outcome.held_duplicates}"
        )
    if outcome.unparked:
        print("该流已恢复 / stream unparked")
    elif outcome.parked_at is not None:
        print(
            f"该流仍暂停于死信 #{outcome.parked_at} / a held event failed: the stream stays"
            f" parked at #{outcome.parked_at}"
        )


async def handle_discard(ctx: OpsContext, args: argparse.Namespace) -> int:
    """Close a dead letter without applying it."""
    service = service_key(args.service)
    projection = None
    if args.apply_held:
        letter = await _one(ctx, service, args.id)
        spec = await _live_spec(ctx, service, letter, ": its held events cannot be applied")
        projection = spec.projection
    try:
        outcome = await discard(
            await ctx.pool(service),
            args.id,
            ctx.operator,
            projection=projection,
            apply_held=args.apply_held,
        )
    except DeadLetterError as exc:
        raise OpsError("discard_refused", f"不能丢弃 / {exc}") from None
    ctx.detail["id"] = args.id
    _held_detail(ctx, outcome)
    print(f"死信 #{args.id} 已丢弃 / discarded")
    _print_held(outcome)
    return EXIT_OK
