"""`application` command line: ops tasks of the application service.

catalogue-import (a directory of CSV files, see data/README.md), catalogue-activate,
catalogue-list, catalogue-import-demo (the shipped demo catalogue, idempotent), migrate.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import re
import sys
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NoReturn, TypeVar

import asyncpg
from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from application_service.adapters import catalogue_store
from application_service.adapters.catalogue_files import (
    DEMO_DIR,
    DEMO_VERSION,
    CatalogueLoad,
    load_catalogue_dir,
)
from application_service.adapters.catalogue_store import MIGRATIONS, NAMESPACE, CatalogueStoreError
from application_service.adapters.scores_import import import_scores, parse_scores
from application_service.domain.windows import ApplicationWindow
from application_service.service_layer.windows import Windows
from eventkit.db import create_pool
from eventkit.envelope import Actor
from eventkit.errors import DomainError
from eventkit.migrations import migrate
from eventkit.settings import refuse_development_values
from eventkit.store import EventStore
from servicekit.types import EARLIEST, LATEST, sane_range_problem

EXIT_OK = 0
EXIT_UNUSABLE_INPUT = 2
_ACTOR = re.compile(r"^(ops|staff):[^\s:]{1,100}$")


DEV_ONLY_DSN = "postgresql://devstack:devstack@127.0.0.1:55432/application"  # the make-run stack


class CliSettings(BaseSettings):
    """Database of the application service: APPLICATION_PG_DSN, else EVENTKIT_PG_DSN, else the
    application database of the `make run` stack."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    pg_dsn: SecretStr = Field(
        default=SecretStr(DEV_ONLY_DSN),
        validation_alias=AliasChoices("APPLICATION_PG_DSN", "EVENTKIT_PG_DSN"),
    )

    @model_validator(mode="after")
    def _no_development_dsn(self) -> CliSettings:
        refuse_development_values(self, {"pg_dsn": DEV_ONLY_DSN})
        return self


class UsageError(Exception):
    """Bad command-line input (exit code 2)."""

    def __init__(self, message: str, detail_en: str) -> None:
        super().__init__(detail_en)
        self.message = message
        self.detail_en = detail_en


def print_load_report(load: CatalogueLoad, directory: Path, *, max_issues: int) -> None:
    """A Chinese + English summary of a catalogue directory, then its errors and warnings."""
    catalogue = load.catalogue
    courses = sum(len(m.courses) for m in catalogue.majors.values())
    print(f"目录文件检查 / catalogue check: {directory} (版本 version {catalogue.version})")
    for name, digest in sorted(load.checksums.items()):
        print(f"  {name}: {load.encodings.get(name, '?')} sha256 {digest}")
    print(
        f"  专业 majors {len(catalogue.majors)} · 课程 courses {courses} · "
        f"确认点 points {len(catalogue.points)} · 规则 routes {len(catalogue.routes)}"
    )
    print(f"  错误 errors {len(load.errors)} · 警告 warnings {len(load.warnings)}")
    shown = load.errors + load.warnings
    if max_issues >= 0:
        shown = load.errors + load.warnings[: max(0, max_issues - len(load.errors))]
    for issue in shown:
        print(f"  {issue.describe()}")
    hidden = len(load.issues) - len(shown)
    if hidden > 0:
        print(f"  另有{hidden}条警告未显示 / {hidden} more warnings not shown")


T = TypeVar("T")


async def _with_pool(args: argparse.Namespace, work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    """Migrate, open a small pool, run `work`, close the pool."""
    dsn = args.dsn or CliSettings().pg_dsn.get_secret_value()
    await migrate(dsn, NAMESPACE, MIGRATIONS)
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        return await work(pool)
    finally:
        catalogue_store.clear_cache(pool)
        await pool.close()


def _read_dir(directory: Path, version: str) -> CatalogueLoad:
    if not directory.is_dir():
        raise UsageError(f"目录不存在：{directory}", f"not a directory: {directory}")
    return load_catalogue_dir(directory, version)


async def _import(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    load = await asyncio.to_thread(_read_dir, directory, args.version)
    print_load_report(load, directory, max_issues=args.show_warnings)
    if not load.importable:
        print(
            f"目录有{len(load.errors)}处错误，未导入任何数据 / "
            f"{len(load.errors)} errors: nothing was imported"
        )
        return EXIT_UNUSABLE_INPUT

    async def store(pool: asyncpg.Pool) -> str:
        return await catalogue_store.import_catalogue(
            pool, load.catalogue, args.actor, load.checksums, activate=args.activate
        )

    version = await _with_pool(args, store)
    state = "并已启用 and activated" if args.activate else "未启用 not active"
    print(f"已导入目录版本 / imported catalogue version {version} ({state})")
    return EXIT_OK


async def _import_demo(args: argparse.Namespace) -> int:
    load = await asyncio.to_thread(load_catalogue_dir, DEMO_DIR, DEMO_VERSION)
    if not load.importable:  # the shipped demo is tested to load cleanly
        print_load_report(load, DEMO_DIR, max_issues=-1)
        return EXIT_UNUSABLE_INPUT

    async def store(pool: asyncpg.Pool) -> int:
        existing = await catalogue_store.version_info(pool, DEMO_VERSION)
        if existing is None:
            await catalogue_store.import_catalogue(pool, load.catalogue, args.actor, load.checksums)
            print(f"已导入演示目录 / imported the demo catalogue {DEMO_VERSION}")
        elif dict(existing.checksums) != load.checksums:
            print(
                f"演示目录版本{DEMO_VERSION}已存在但文件已变化，请提升版本号 / "
                f"{DEMO_VERSION} exists with other file checksums: bump DEMO_VERSION"
            )
            return EXIT_UNUSABLE_INPUT
        else:
            print(f"演示目录已导入，无需重复 / the demo catalogue {DEMO_VERSION} is already there")
        if args.activate:
            changed = await catalogue_store.activate(pool, DEMO_VERSION, args.actor)
            print(
                f"已启用 / activated {DEMO_VERSION}"
                if changed
                else f"{DEMO_VERSION} 已是当前版本 / is already active"
            )
        return EXIT_OK

    return await _with_pool(args, store)


async def _activate(args: argparse.Namespace) -> int:
    async def run(pool: asyncpg.Pool) -> bool:
        return await catalogue_store.activate(pool, args.version, args.actor)

    changed = await _with_pool(args, run)
    if changed:
        print(f"已启用目录版本 / activated catalogue version {args.version}")
    else:
        print(f"目录版本{args.version}已是当前版本 / {args.version} is already active")
    return EXIT_OK


async def _list(args: argparse.Namespace) -> int:
    versions = await _with_pool(args, catalogue_store.list_versions)
    if not versions:
        print("尚未导入任何目录版本 / no catalogue version imported yet")
        return EXIT_OK
    print("目录版本 / catalogue versions (* = 当前启用 active):")
    for info in versions:
        mark = "*" if info.active else " "
        print(
            f" {mark} {info.version}  {info.imported_at:%Y-%m-%d %H:%M:%S%z}  {info.imported_by}  "
            f"专业 majors {info.majors} · 课程 courses {info.courses} · "
            f"确认点 points {info.points} · 规则 routes {info.routes}"
        )
    return EXIT_OK


async def _migrate(args: argparse.Namespace) -> int:
    dsn = args.dsn or CliSettings().pg_dsn.get_secret_value()
    applied = await migrate(dsn, NAMESPACE, MIGRATIONS)
    print("已应用 applied: " + (", ".join(applied) or "无 nothing new"))
    return EXIT_OK


CHINA = timezone(timedelta(hours=8))


def _moment(text: str, option: str) -> datetime:
    """An ISO date-time in servicekit's sane range; without an offset it is Beijing time."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(
            f"{option} 时间格式不正确：{text}", f"{option}: not an ISO date-time: {text}"
        ) from exc
    problem = sane_range_problem(value, option)
    if problem is not None:
        raise UsageError(
            problem, f"{option}: {text} outside {EARLIEST.isoformat()} .. {LATEST.isoformat()}"
        )
    return value if value.tzinfo is not None else value.replace(tzinfo=CHINA)


def _actor_of(text: str) -> Actor:
    kind, _, ident = text.partition(":")
    return Actor(kind="ops" if kind == "ops" else "staff", id=ident)


async def _window_open(args: argparse.Namespace) -> int:
    try:
        window = ApplicationWindow(
            window_id=uuid.uuid4(),
            name=args.name,
            opens_at=_moment(args.opens, "--opens"),
            applications_close_at=_moment(args.applications_close, "--applications-close"),
            point_review_close_at=_moment(args.point_review_close, "--point-review-close"),
            province_review_close_at=_moment(args.province_review_close, "--province-review-close"),
            results_published_at=_moment(args.results, "--results"),
        )
    except DomainError as error:
        raise UsageError(error.message, error.detail_en) from error

    async def run(pool: asyncpg.Pool) -> int:
        await Windows(pool, EventStore(pool)).open(window, _actor_of(args.actor))
        print(f"申请时段已开放 window opened: {window.window_id} {window.name}")
        return EXIT_OK

    return await _with_pool(args, run)


async def _window_close(args: argparse.Namespace) -> int:
    try:
        window_id = uuid.UUID(args.window_id)
    except ValueError as exc:
        raise UsageError("申请时段编号不正确", f"not a window id: {args.window_id}") from exc

    async def run(pool: asyncpg.Pool) -> int:
        try:
            await Windows(pool, EventStore(pool)).close(
                window_id, args.reason, _actor_of(args.actor)
            )
        except DomainError as error:
            raise UsageError(error.message, error.detail_en) from error
        print(f"申请时段已关闭 window closed: {window_id}")
        return EXIT_OK

    return await _with_pool(args, run)


async def _window_list(args: argparse.Namespace) -> int:
    async def run(pool: asyncpg.Pool) -> int:
        now = datetime.now(CHINA)
        for window in await Windows(pool, EventStore(pool)).all():
            print(
                f"{window.window_id}  {window.name}  {window.stage(now).label}  "
                f"申请 {window.opens_at:%Y-%m-%d %H:%M} – "
                f"{window.applications_close_at.astimezone(CHINA):%Y-%m-%d %H:%M}"
            )
        return EXIT_OK

    return await _with_pool(args, run)


def _read_file(path: Path) -> bytes:
    if not path.is_file():
        raise UsageError(f"文件不存在：{path}", f"no such file: {path}")
    return path.read_bytes()


async def _scores_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    parsed = parse_scores(await asyncio.to_thread(_read_file, path))
    for error in parsed.errors:
        print(error)
    if parsed.errors:
        print(f"成绩文件有 {len(parsed.errors)} 处错误，未导入 / not imported")
        return EXIT_UNUSABLE_INPUT

    async def run(pool: asyncpg.Pool) -> int:
        import_id = await import_scores(pool, path, parsed, args.actor)
        print(f"已导入 imported {len(parsed.rows)} 条合格记录 rows (import {import_id})")
        return EXIT_OK

    return await _with_pool(args, run)


class _Parser(argparse.ArgumentParser):
    """Usage errors in Chinese and English, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNUSABLE_INPUT, f"参数错误 / bad argument: {message}\n")


def _common(parser: argparse.ArgumentParser, *, actor: bool) -> None:
    parser.add_argument(
        "--dsn", help="PostgreSQL DSN (default: APPLICATION_PG_DSN, EVENTKIT_PG_DSN)"
    )
    if actor:
        parser.add_argument(
            "--actor", default=f"ops:{getpass.getuser()}", help="who does it, e.g. ops:zhang.san"
        )


def build_parser() -> argparse.ArgumentParser:
    """The `application` argument parser."""
    parser = _Parser(prog="application", description="免考申请服务运维命令 application ops")
    commands = parser.add_subparsers(dest="command", required=True)
    imp = commands.add_parser(
        "catalogue-import", help="导入专业目录与免考规则 import a catalogue directory"
    )
    imp.add_argument("directory", help="majors.csv, courses.csv, points.csv, routes.csv, ...")
    imp.add_argument("--version", required=True, help="新版本号 new version id, e.g. 2026.1")
    imp.add_argument("--activate", action="store_true", help="导入后立即启用 activate it too")
    imp.add_argument(
        "--show-warnings", type=int, default=50, help="issues to print (errors always all)"
    )
    _common(imp, actor=True)
    imp.set_defaults(run=_import)
    demo = commands.add_parser(
        "catalogue-import-demo", help=f"导入内置演示目录 import the demo catalogue {DEMO_VERSION}"
    )
    demo.add_argument("--activate", action="store_true", help="并启用 activate it too")
    _common(demo, actor=True)
    demo.set_defaults(run=_import_demo)
    act = commands.add_parser("catalogue-activate", help="启用目录版本 activate a version")
    act.add_argument("version", help="已导入的版本号 an imported version")
    _common(act, actor=True)
    act.set_defaults(run=_activate)
    lst = commands.add_parser("catalogue-list", help="列出目录版本 list the imported versions")
    _common(lst, actor=False)
    lst.set_defaults(run=_list)
    wopen = commands.add_parser("window-open", help="开放申请时段 open an application window")
    wopen.add_argument("--name", required=True, help="e.g. 2026年下半年免考申请")
    wopen.add_argument("--opens", required=True, help="ISO time; Beijing time without offset")
    wopen.add_argument("--applications-close", required=True, help="考生申请截止")
    wopen.add_argument("--point-review-close", required=True, help="确认点初审截止")
    wopen.add_argument("--province-review-close", required=True, help="省级复审截止")
    wopen.add_argument("--results", required=True, help="结果公布")
    _common(wopen, actor=True)
    wopen.set_defaults(run=_window_open)
    wclose = commands.add_parser("window-close", help="提前关闭申请时段 close a window early")
    wclose.add_argument("window_id")
    wclose.add_argument("--reason", required=True, help="shown to candidates")
    _common(wclose, actor=True)
    wclose.set_defaults(run=_window_close)
    wlist = commands.add_parser("window-list", help="列出申请时段 list the windows")
    _common(wlist, actor=False)
    wlist.set_defaults(run=_window_list)
    scores = commands.add_parser(
        "scores-import", help="导入成绩合格记录 import passed courses (准考证号,课程代码,合格日期)"
    )
    scores.add_argument("file")
    _common(scores, actor=True)
    scores.set_defaults(run=_scores_import)
    mig = commands.add_parser("migrate", help="应用数据库迁移 apply the application migrations")
    _common(mig, actor=False)
    mig.set_defaults(run=_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `application` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    actor = getattr(args, "actor", None)
    if actor is not None and not _ACTOR.match(actor):
        print(
            "参数错误 / bad argument: 操作人须为 ops:<姓名> 或 staff:<编号> / "
            "--actor must look like ops:<name> or staff:<id>",
            file=sys.stderr,
        )
        return EXIT_UNUSABLE_INPUT
    try:
        code: int = asyncio.run(args.run(args))
    except CatalogueStoreError as error:
        print(f"{error.message_zh} / {error.detail_en} ({error.code})", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    except UsageError as error:
        print(f"参数错误 / bad argument: {error.message} / {error.detail_en}", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    return code


if __name__ == "__main__":
    sys.exit(main())
