"""`identity` command line: ops tasks of the identity service.

roster import, migrations, staff accounts, signing-key rotation and the sweepers.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import date
from pathlib import Path
from typing import NoReturn, TypeVar

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventkit.db import create_pool
from eventkit.logs import configure_logging, mask_personal_data
from eventkit.migrations import migrate
from eventkit.settings import refuse_development_values
from identity_service import bootstrap
from identity_service.adapters.pii import PiiCipher, PiiSettings
from identity_service.adapters.roster_import import ImportReport, parse_actor
from identity_service.adapters.throttle import LoginThrottle
from identity_service.domain.errors import DomainError
from identity_service.domain.staff import check_staff, normalise_username
from identity_service.service_layer.roster import MIGRATIONS, import_roster, open_roster
from identity_service.settings import IdentitySettings

log = logging.getLogger("identity_service.cli")

EXIT_OK = 0
EXIT_ROWS_REJECTED = 1  # the report was printed; some or all rows were not loaded
EXIT_UNUSABLE_INPUT = 2


DEV_ONLY_DSN = "postgresql://devstack:devstack@127.0.0.1:55432/identity"  # the make-run stack


class CliSettings(BaseSettings):
    """Database of the identity service: IDENTITY_PG_DSN, else EVENTKIT_PG_DSN, else the
    identity database of the `make run` stack."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    pg_dsn: SecretStr = Field(
        default=SecretStr(DEV_ONLY_DSN),
        validation_alias=AliasChoices("IDENTITY_PG_DSN", "EVENTKIT_PG_DSN"),
    )

    @model_validator(mode="after")
    def _no_development_dsn(self) -> CliSettings:
        refuse_development_values(self, {"pg_dsn": DEV_ONLY_DSN})
        return self


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


def _cipher() -> PiiCipher:
    pii = PiiSettings()
    if pii.uses_dev_keys:
        log.warning(
            "using the DEV-ONLY personal-data keys: set IDENTITY_PII_KEY, IDENTITY_LOOKUP_KEY"
        )
    return PiiCipher.from_settings(pii)


async def _roster_import(args: argparse.Namespace) -> int:
    dsn = args.dsn or CliSettings().pg_dsn.get_secret_value()
    cipher = _cipher()
    roster = open_roster(Path(args.file), today=date.today())
    await migrate(dsn, "identity", MIGRATIONS)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        report = await import_roster(roster, pool=pool, cipher=cipher, actor=args.actor)
    finally:
        await pool.close()
    print_report(report, max_errors=args.show_errors)
    return _import_exit_code(report, allow_partial=args.allow_partial)


def _import_exit_code(report: ImportReport, *, allow_partial: bool) -> int:
    """0 when every row loaded; EXIT_ROWS_REJECTED when any was rejected, unless partial loads
    are accepted (--allow-partial) and at least one row did load."""
    if not report.rejected:
        return EXIT_OK
    if allow_partial and report.rejected < report.rows_read:
        print(
            f"已按 --allow-partial 接受部分导入：拒绝 {report.rejected} 行 / "
            f"partial load accepted: {report.rejected} rows rejected",
            file=sys.stderr,
        )
        return EXIT_OK
    loaded = report.rows_read - report.rejected
    print(
        f"导入不完整：{report.rows_read} 行中 {report.rejected} 行被拒绝，{loaded} 行已导入；"
        "请修正后重新导入（重复导入是安全的）"
        + ("" if allow_partial else "，或加 --allow-partial 接受部分导入")
        + f" / incomplete: {report.rejected} of {report.rows_read} rows rejected",
        file=sys.stderr,
    )
    return EXIT_ROWS_REJECTED


async def _migrate(args: argparse.Namespace) -> int:
    dsn = args.dsn or CliSettings().pg_dsn.get_secret_value()
    applied = await migrate(dsn, "identity", MIGRATIONS)
    print("已应用 applied: " + (", ".join(applied) or "无 nothing new"))
    return EXIT_OK


T = TypeVar("T")


class UsageError(Exception):
    """Bad command-line input that no domain rule covers (exit code 2)."""

    def __init__(self, message: str, detail_en: str) -> None:
        super().__init__(detail_en)
        self.message = message
        self.detail_en = detail_en


async def _with_identity(
    args: argparse.Namespace, work: Callable[[bootstrap.Identity], Awaitable[T]]
) -> T:
    """Migrate, wire the service on a small pool, run `work`, close the pool."""
    dsn = args.dsn or CliSettings().pg_dsn.get_secret_value()
    cipher = _cipher()
    await migrate(dsn, "identity", MIGRATIONS)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        return await work(bootstrap.wire(pool, IdentitySettings(), cipher))
    finally:
        await pool.close()


def read_new_password(from_stdin: bool) -> str:
    """The new password: one line of stdin, or typed twice without echo (never an argument)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("标准输入中没有密码", "no password on stdin")
        return password
    first = getpass.getpass("密码 / password: ")
    second = getpass.getpass("再次输入密码 / repeat password: ")
    if first != second:
        raise UsageError("两次输入的密码不一致", "the passwords differ")
    return first


async def _staff_create(args: argparse.Namespace) -> int:
    actor = parse_actor(args.actor)
    if actor.kind != "ops":
        raise UsageError("创建人须为 ops:<姓名>", "--actor must be ops:<name>")
    # Check everything but the password before asking for it.
    check_staff(args.username, args.display_name, args.role, args.cp)
    password = read_new_password(args.password_stdin)

    async def create(identity: bootstrap.Identity) -> uuid.UUID:
        return await identity.staff.create(
            username=args.username,
            display_name=args.display_name,
            roles=args.role,
            confirmation_points=args.cp,
            password=password,
            created_by=actor.id,
        )

    staff_id = await _with_identity(args, create)
    print(
        f"已创建工作人员账号 / staff account created: {normalise_username(args.username)}",
        file=sys.stderr,
    )
    print(staff_id)
    return EXIT_OK


async def _rotate_signing_key(args: argparse.Namespace) -> int:
    async def rotate(identity: bootstrap.Identity) -> str:
        return await identity.keys.rotate()

    kid = await _with_identity(args, rotate)
    print(f"新签名密钥 / new signing key: {kid}")
    return EXIT_OK


async def _sweep(args: argparse.Namespace) -> int:
    async def sweep(identity: bootstrap.Identity) -> tuple[int, int, int]:
        captchas = await identity.captchas.sweep()
        sms_codes = await identity.sms_codes.sweep()
        counters = await LoginThrottle(identity.pool).sweep()
        return captchas, sms_codes, counters

    captchas, sms_codes, counters = await _with_identity(args, sweep)
    print(
        f"已清理 swept: 验证码 captchas {captchas} · 短信验证码 SMS codes {sms_codes}"
        f" · 登录计数 login counters {counters}"
    )
    return EXIT_OK


class _Parser(argparse.ArgumentParser):
    """Usage errors in Chinese and English, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNUSABLE_INPUT, f"参数错误 / bad argument: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The `identity` argument parser."""
    parser = _Parser(prog="identity", description="身份服务运维命令 identity ops")
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
    roster.add_argument(
        "--allow-partial",
        action="store_true",
        help="接受部分导入 exit 0 although some rows were rejected (not when all were); "
        "otherwise any rejected row exits 1 (the valid rows are loaded and the report printed)",
    )
    roster.set_defaults(run=_roster_import)
    mig = commands.add_parser("migrate", help="应用数据库迁移 apply the identity migrations")
    mig.add_argument("--dsn", help="PostgreSQL DSN (default: IDENTITY_PG_DSN, EVENTKIT_PG_DSN)")
    mig.set_defaults(run=_migrate)
    staff = commands.add_parser(
        "staff-create", help="创建工作人员账号 create a staff account (reviewer, senior, ops)"
    )
    staff.add_argument("--username", required=True, help="用户名, e.g. xiaodian.reviewer1")
    staff.add_argument("--display-name", required=True, help="显示名称 shown in audit trails")
    staff.add_argument(
        "--role",
        action="append",
        default=[],
        required=True,
        help="reviewer | senior_reviewer | ops (repeatable)",
    )
    staff.add_argument(
        "--cp",
        action="append",
        default=[],
        help="确认点 6-digit district code a reviewer is bound to (repeatable)",
    )
    staff.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from the first line of stdin (else prompt twice)",
    )
    staff.add_argument(
        "--actor", default=f"ops:{getpass.getuser()}", help="who creates it, e.g. ops:zhang.san"
    )
    staff.add_argument("--dsn", help="PostgreSQL DSN (default: IDENTITY_PG_DSN, EVENTKIT_PG_DSN)")
    staff.set_defaults(run=_staff_create)
    rotate = commands.add_parser(
        "rotate-signing-key", help="轮换令牌签名密钥 rotate the token signing key"
    )
    rotate.add_argument("--dsn", help="PostgreSQL DSN (default: IDENTITY_PG_DSN, EVENTKIT_PG_DSN)")
    rotate.set_defaults(run=_rotate_signing_key)
    sweep = commands.add_parser(
        "sweep", help="清理过期验证码和登录计数 delete expired captchas and idle login counters"
    )
    sweep.add_argument("--dsn", help="PostgreSQL DSN (default: IDENTITY_PG_DSN, EVENTKIT_PG_DSN)")
    sweep.set_defaults(run=_sweep)
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
    except UsageError as error:
        print(f"参数错误 / bad argument: {error.message} / {error.detail_en}", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    return code


if __name__ == "__main__":
    sys.exit(main())
