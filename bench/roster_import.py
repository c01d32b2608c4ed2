"""Roster import throughput: 300,000 synthetic enrolment rows into a fresh database, then a
re-import of the same file with 1% of the rows changed.

Run from the workspace root on a fresh local stack:

    uv run devstack exec --run-dir .run/bench-roster -- uv run python bench/roster_import.py

or against a running server with an admin DSN (`--dsn postgresql://postgres@127.0.0.1:55432/postgres`).
The benchmark creates the database bench_roster through it (dropping an old one), applies eventkit's
and the identity service's migrations, and drops it at the end unless --keep-db.

The rows are valid (GB 11643 check digits, birth dates 1960-2005, ID gender digit matching the
gender column, Chinese names, 0-8 passed courses) so every row takes the full path: parse and
validate, AES-256-GCM + HMAC, COPY into staging, upsert. The timing is the service-layer call
`import_roster_file` end to end (encoding check and sha256 pass over the file included); a
parse-only pass over the same file is timed too, to show where the time goes. Results are printed
and appended to bench/results/roster_import.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from eventkit.db import create_pool
from eventkit.migrations import migrate
from identity_service.adapters.pii import PiiCipher
from identity_service.domain.id_card import check_digit
from identity_service.domain.roster import RosterRow, parse_roster
from identity_service.service_layer.roster import (
    MIGRATIONS,
    import_roster_file,
    inspect_roster_file,
)

RESULTS = Path(__file__).resolve().parent / "results" / "roster_import.json"
DB_NAME = "bench_roster"
HEADER = "准考证号,身份证号,姓名,性别,考区,报名区县,专业代码,已合格课程"
COUNTIES = ("140105", "140106", "140107", "140109", "140110", "140121", "110105", "310115")
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红鹏飞建国海燕晓东"
MAJORS = ("580401", "030101K", "120203K", "080901", "050101", "020301K")
COURSES = tuple(f"{c:05d}" for c in (15, 18, 12, 420, 5677, 6091, 6092, 6093, 3706, 3707, 3708))


def synthetic_rows(count: int, seed: int = 20261128) -> list[list[str]]:
    """`count` valid roster rows: unique tickets and ID numbers."""
    rng = random.Random(seed)
    rows: list[list[str]] = []
    start = date(1960, 1, 1)
    for i in range(count):
        county = COUNTIES[i % len(COUNTIES)]
        # Unique by construction: county, birth day and sequence all derive from i.
        slot = i // len(COUNTIES)
        birth = start + timedelta(days=slot // 500)
        sequence = slot % 500 * 2 + rng.randrange(2)
        first17 = f"{county}{birth:%Y%m%d}{sequence:03d}"
        id_number = first17 + check_digit(first17)
        gender = "男" if sequence % 2 else "女"
        name = rng.choice(SURNAMES) + "".join(rng.choices(GIVEN, k=rng.randint(1, 2)))
        courses = ";".join(sorted(rng.sample(COURSES, rng.randint(0, 8))))
        ticket = f"01{county[2:4]}{18 + i % 8:02d}{i:06d}"
        rows.append(
            [
                ticket,
                id_number,
                name,
                gender,
                county[:4] + "00",
                county,
                rng.choice(MAJORS),
                courses,
            ]
        )
    return rows


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        handle.write(HEADER + "\r\n")
        for row in rows:
            handle.write(",".join(row) + "\r\n")


def change_some(
    rows: list[list[str]], fraction: float, seed: int = 7
) -> tuple[list[list[str]], int]:
    rng = random.Random(seed)
    changed = [list(r) for r in rows]
    picked = rng.sample(range(len(rows)), int(len(rows) * fraction))
    for i in picked:
        changed[i][2] = changed[i][2][:1] + "改" + changed[i][2][1:][:1]
    return changed, len(picked)


def dsn_for(admin_dsn: str, dbname: str) -> str:
    parts = urlsplit(admin_dsn)
    return urlunsplit(parts._replace(path=f"/{dbname}"))


def default_admin_dsn() -> str:
    if os.environ.get("DEVSTACK_PG_PORT"):
        from devstack import Endpoints

        return Endpoints.from_env().pg_dsn("postgres")
    return os.environ.get("EVENTKIT_PG_DSN", "postgresql://postgres@127.0.0.1:55432/postgres")


async def server_facts(conn: asyncpg.Connection) -> dict[str, str]:
    facts = {}
    for name in ("server_version", "synchronous_commit", "fsync", "shared_buffers", "max_wal_size"):
        facts[name] = await conn.fetchval(f"SHOW {name}")
    return facts


def parse_only(path: Path) -> tuple[float, int]:
    started = time.perf_counter()
    roster_file = inspect_roster_file(path)
    valid = sum(
        1 for r in parse_roster(roster_file.lines(), today=date.today()) if isinstance(r, RosterRow)
    )
    return time.perf_counter() - started, valid


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    admin = await asyncpg.connect(args.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{DB_NAME}"')
        facts = await server_facts(admin)
    finally:
        await admin.close()
    dsn = dsn_for(args.dsn, DB_NAME)
    await migrate(dsn, "identity", MIGRATIONS)
    cipher = PiiCipher({"bench": os.urandom(32)}, "bench", os.urandom(32))
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        rows = synthetic_rows(args.rows)
        first = Path(tmp) / "roster.csv"
        write_csv(first, rows)
        changed_rows, changed_count = change_some(rows, args.change_fraction)
        second = Path(tmp) / "roster-changed.csv"
        write_csv(second, changed_rows)
        generate_s = time.perf_counter() - started
        print(
            f"generated 2 x {args.rows:,} rows in {generate_s:.1f} s "
            f"({first.stat().st_size / 1e6:.1f} MB each)"
        )

        parse_s, valid = parse_only(first)
        assert valid == args.rows, f"only {valid} of {args.rows} synthetic rows are valid"
        print(f"parse + validate only: {parse_s:.2f} s ({args.rows / parse_s:,.0f} rows/s)")

        pool = await create_pool(dsn, min_size=1, max_size=2)
        try:
            runs = []
            for label, path in (("initial", first), ("reimport_1pct_changed", second)):
                report = await import_roster_file(
                    path, pool=pool, cipher=cipher, actor="ops:bench", today=date.today()
                )
                run = {
                    "run": label,
                    "rows": report.rows_read,
                    "seconds": round(report.duration_s, 2),
                    "rows_per_s": round(report.rows_per_second),
                    "inserted": report.inserted,
                    "updated": report.updated,
                    "unchanged": report.unchanged,
                    "rejected": report.rejected,
                }
                runs.append(run)
                print(
                    f"{label:>22}: {report.rows_read:,} rows in {report.duration_s:.2f} s "
                    f"= {report.rows_per_second:,.0f} rows/s (inserted {report.inserted:,}, "
                    f"updated {report.updated:,}, unchanged {report.unchanged:,}, "
                    f"rejected {report.rejected:,})"
                )
            assert runs[0]["inserted"] == args.rows and runs[0]["rejected"] == 0
            assert runs[1]["updated"] == changed_count and runs[1]["inserted"] == 0
            async with pool.acquire() as conn:
                table_mb = await conn.fetchval(
                    "SELECT pg_total_relation_size('identity.roster') / 1e6"
                )
        finally:
            await pool.close()
    if not args.keep_db:
        admin = await asyncpg.connect(args.dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        finally:
            await admin.close()
    result = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python bench/roster_import.py " + " ".join(sys.argv[1:]),
        "server": facts,
        "client": {"python": platform.python_version(), "cores": os.cpu_count()},
        "params": {"rows": args.rows, "change_fraction": args.change_fraction, "chunk_rows": 5000},
        "parse_only": {"seconds": round(parse_s, 2), "rows_per_s": round(args.rows / parse_s)},
        "imports": runs,
        "roster_table_mb": round(float(table_mb), 1),
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default=None, help="admin DSN (default: the devstack's)")
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--change-fraction", type=float, default=0.01)
    parser.add_argument("--keep-db", action="store_true")
    args = parser.parse_args()
    args.dsn = args.dsn or default_admin_dsn()
    result = asyncio.run(main_async(args))
    history: list[Any] = []
    if RESULTS.exists():
        loaded = json.loads(RESULTS.read_text(encoding="utf-8"))
        history = loaded if isinstance(loaded, list) else [loaded]
    history.append(result)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(history, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
