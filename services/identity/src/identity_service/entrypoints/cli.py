"""`identity` command line: ops tasks of the identity service (roster import, migrations)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit.db import create_pool
from eventkit.logs import configure_logging, mask_personal_data
from eventkit.migrations import migrate
from identity_service.adapters.pii import PiiCipher, PiiSettings
from identity_service.adapters.roster_import import ImportReport, parse_actor
from identity_service.domain.errors import DomainError
from identity_service.service_layer.roster import MIGRATIONS, import_roster, open_roster

log = logging.getLogger("identity_service.cli")

EXIT_OK = 0
EXIT_UNUSABLE_INPUT = 2


class CliSettings(BaseSettings):
    """Database of the identity service: IDENTITY_PG_DSN, else EVENTKIT_PG_DSN."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    pg_dsn: SecretStr = Field(
        default=SecretStr("postgresql://postgres@127.0.0.1:55432/postgres"),
        validation_alias=AliasChoices("IDENTITY_PG_DSN", "EVENTKIT_PG_DSN"),
    )


def _out(text: str) -> None:
    print(mask_personal_data(text))


def print_report(report: ImportReport, *, max_errors: int) -> None:
    """A Chinese + English summary, then the first rejected lines (never an unmasked number)."""
    _out(f"名册导入完成 / roster import finished: {report.file_name}")
    _out(f"  编码 encoding: {report.encoding}  sha256: {report.file_sha256}")
    _out(f"  导入编号 import id: {report.import_id}")
    _out(
        f"  读取 read {report.rows_read} · 新增 inserted {report.inserted} · "
        f"更新 updated {report.updated} · 未变 unchanged {report.unchanged} · "
        f"拒绝 rejected {report.rejected}"
    )
    _out(f"  用时 duration {report.duration_s:.1f} s ({report.rows_per_second:,.0f} rows/s)")
    if report.errors:
        shown = report.errors[:max_errors]
        _out(f"错误 / errors (前{len(shown)}条，共{len(report.errors)}条 / first {len(shown)}):")
        for error in shown:
            column = f" [{error.column}]" if error.column else ""
            _out(
                f"  第{error.line_number}行 line {error.line_number}{column} {error.code}: "
                f"{error.message_zh}"
            )


async def _roster_import(args: argparse.Namespace) -> int:
    dsn = args.dsn or CliSettings().pg_dsn.get_secret_value()
    pii = PiiSettings()
    if pii.uses_dev_keys:
        log.warning(
            "using the DEV-ONLY personal-data keys: set IDENTITY_PII_KEY, IDENTITY_LOOKUP_KEY"
        )
    cipher = PiiCipher.from_settings(pii)
    roster = open_roster(Path(args.file), today=date.today())
    await migrate(dsn, "identity", MIGRATIONS)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        report = await import_roster(roster, pool=pool, cipher=cipher, actor=args.actor)
    finally:
        await pool.close()
    print_report(report, max_errors=args.show_errors)
    return EXIT_OK


async def _migrate(args: argparse.Namespace) -> int:
    dsn = args.dsn or CliSettings().pg_dsn.get_secret_value()
    applied = await migrate(dsn, "identity", MIGRATIONS)
    print("已应用 applied: " + (", ".join(applied) or "无 nothing new"))
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The `identity` argument parser."""
    parser = argparse.ArgumentParser(prog="identity", description="身份服务运维命令 identity ops")
    commands = parser.add_subparsers(dest="command", required=True)
    roster = commands.add_parser(
        "roster-import", help="导入在籍考生名册 import the enrolment roster (CSV)"
    )
    roster.add_argument("file", help="CSV, UTF-8 (with or without BOM) or GB18030, with a header")
    roster.add_argument("--dsn", help="PostgreSQL DSN (default: IDENTITY_PG_DSN, EVENTKIT_PG_DSN)")
    roster.add_argument(
        "--actor", default=f"ops:{getpass.getuser()}", help="who imports, e.g. ops:zhang.san"
    )
    roster.add_argument("--show-errors", type=int, default=20, help="rejected lines to print")
    roster.set_defaults(run=_roster_import)
    mig = commands.add_parser("migrate", help="应用数据库迁移 apply the identity migrations")
    mig.add_argument("--dsn", help="PostgreSQL DSN (default: IDENTITY_PG_DSN, EVENTKIT_PG_DSN)")
    mig.set_defaults(run=_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `identity` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging("identity", json_lines=False)
    if getattr(args, "actor", None) is not None:
        try:
            parse_actor(args.actor)
        except ValueError as exc:
            print(f"参数错误 / bad argument: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE_INPUT
    try:
        code: int = asyncio.run(args.run(args))
    except DomainError as error:
        print(
            mask_personal_data(f"{error.message} / {error.detail_en} ({error.code})"),
            file=sys.stderr,
        )
        return EXIT_UNUSABLE_INPUT
    return code


if __name__ == "__main__":
    sys.exit(main())
