"""`contracts generate | check | compat`: keep the committed schemas true and compatible."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from contracts.evolution import (
    BaselineError,
    check_evolution,
    load_baseline,
    read_on_disk,
    schema_history,
)
from contracts.registry import REGISTRY
from contracts.schema_gen import (
    check_generated,
    current_schemas,
    default_root,
    write_generated,
)

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contracts", description="Event contracts: generate, check and compare schemas."
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="the contracts folder holding schemas/ and asyncapi.json (default: this checkout's)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("generate", help="write the JSON Schemas and the AsyncAPI document")
    commands.add_parser("check", help="fail when a generated file is missing or stale")
    compat = commands.add_parser(
        "compat", help="fail when a change would break readers of committed events"
    )
    compat.add_argument(
        "--against",
        metavar="REF|DIR",
        default=None,
        help="baseline: a git ref or a folder of schemas (default: every committed version)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit code."""
    args = _parser().parse_args(argv)
    root: Path = args.root or default_root()
    if args.command == "generate":
        return _generate(root)
    if args.command == "check":
        return _check(root)
    return _compat(root, args.against)


def _generate(root: Path) -> int:
    written = write_generated(root)
    for relpath in written:
        print(f"wrote {relpath}")
    for line in check_generated(root):
        print(f"warning: {line}; delete it if the event is gone on purpose", file=sys.stderr)
    print(f"{len(written)} file(s) written" if written else "all generated files up to date")
    return EXIT_OK


def _check(root: Path) -> int:
    problems = check_generated(root)
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} problem(s); run `contracts generate`", file=sys.stderr)
        return EXIT_PROBLEMS
    print("generated files are up to date")
    return EXIT_OK


def _compat(root: Path, against: str | None) -> int:
    """Check against one baseline, or by default against every committed version of the schemas.

    A reader of any event ever stored may still exist, so the current contracts must read every
    schema that was ever committed, not only the newest (which in CI is the change itself).
    """
    refs: list[str | None] = [against] if against is not None else [*schema_history(root)] or [None]
    current, on_disk = current_schemas(), read_on_disk(root)
    failed = False
    for ref in refs:
        try:
            label, baseline = load_baseline(root, ref)
        except BaselineError as error:
            print(f"contracts compat: {error}", file=sys.stderr)
            return EXIT_USAGE
        problems = check_evolution(baseline, current, on_disk, REGISTRY)
        for line in problems:
            print(line)
        if problems:
            print(f"{len(problems)} breaking change(s) against {label}", file=sys.stderr)
            failed = True
    if failed:
        return EXIT_PROBLEMS
    print(f"compatible with {len(refs)} committed version(s) of the schemas")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
