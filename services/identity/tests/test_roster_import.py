"""Roster import on real PostgreSQL: counts, re-imports, bad rows, conflicts, no clear IDs."""

from __future__ import annotations

import json
import re
import uuid
from datetime import date
from pathlib import Path

import asyncpg
import pytest

from eventkit.envelope import Actor, Metadata, NewEvent
from eventkit.store import EventStore
from identity_service.adapters.pii import PURPOSE_ROSTER_ID_NUMBER, PiiCipher
from identity_service.adapters.roster_import import ImportReport
from identity_service.domain.id_card import check_digit
from identity_service.domain.roster import ROSTER_STREAM_ID, ROSTER_STREAM_TYPE
from identity_service.entrypoints.cli import main
from identity_service.service_layer.roster import import_roster_file

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 28)
HEADER = "准考证号,身份证号,姓名,性别,考区,报名区县,专业代码,已合格课程"
CIPHER = PiiCipher({"t1": b"k" * 32}, "t1", b"h" * 32)


def id_number(sequence: int) -> str:
    first17 = f"14010519900101{(sequence * 2 + 1) % 1000:03d}"
    return first17 + check_digit(first17)


def line(i: int, *, name: str = "张三", number: str | None = None, courses: str = "00015") -> str:
    number = number or id_number(i)
    return f"0101181{i:05d},{number},{name},男,140100,140105,580401,{courses}"


def write(path: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding=encoding)
    return path


async def run(pool: asyncpg.Pool, path: Path, chunk_rows: int = 3) -> ImportReport:
    return await import_roster_file(
        path, pool=pool, cipher=CIPHER, actor="ops:test", today=TODAY, chunk_rows=chunk_rows
    )


async def test_import_and_reimport(identity_pool: asyncpg.Pool, tmp_path: Path) -> None:
    first = await run(identity_pool, write(tmp_path / "a.csv", [line(i) for i in range(1, 8)]))
    assert (first.rows_read, first.inserted, first.updated, first.unchanged, first.rejected) == (
        7, 7, 0, 0, 0,
    )  # fmt: skip
    assert first.errors == []

    changed = [line(i) for i in range(1, 8)]
    changed[2] = line(3, name="张叁")
    again = await run(identity_pool, write(tmp_path / "b.csv", [*changed, line(8)]))
    assert (again.rows_read, again.inserted, again.updated, again.unchanged, again.rejected) == (
        8, 1, 1, 6, 0,
    )  # fmt: skip

    async with identity_pool.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT * FROM identity.roster WHERE ticket_number = '010118100003'"
        )
        assert row is not None
        assert row["name"] == "张叁" and row["import_id"] == again.import_id
        assert row["id_number_masked"] == id_number(3)[:4] + "*" * 10 + id_number(3)[-4:]
        assert row["passed_courses"] == ["00015"]
        assert CIPHER.decrypt(row["id_number_encrypted"], PURPOSE_ROSTER_ID_NUMBER) == id_number(3)
        assert row["id_lookup_hash"] == CIPHER.lookup_hash(id_number(3))
        unchanged = await conn.fetchval(
            "SELECT import_id FROM identity.roster WHERE ticket_number = '010118100001'"
        )
        assert unchanged == first.import_id
        imports = await conn.fetch(
            "SELECT * FROM identity.roster_imports ORDER BY started_at, import_id"
        )
        assert {r["import_id"] for r in imports} == {first.import_id, again.import_id}
        record = next(r for r in imports if r["import_id"] == again.import_id)
        assert (record["rows_inserted"], record["rows_updated"], record["rows_unchanged"]) == (
            1, 1, 6,
        )  # fmt: skip
        assert record["actor"] == "ops:test" and record["finished_at"] is not None
        events = await conn.fetch(
            "SELECT * FROM eventkit.events WHERE stream_type = $1 AND stream_id = $2"
            " ORDER BY stream_version",
            ROSTER_STREAM_TYPE,
            ROSTER_STREAM_ID,
        )
    assert [e["event_type"] for e in events] == ["EnrolmentRosterImported"] * 2
    payload = events[1]["payload"]
    assert payload["import_id"] == str(again.import_id)
    assert payload["file_sha256"] == again.file_sha256
    assert (payload["rows_inserted"], payload["rows_updated"], payload["rows_unchanged"]) == (
        1, 1, 6,
    )  # fmt: skip
    assert events[1]["actor_kind"] == "ops" and events[1]["actor_id"] == "test"


async def test_a_reimport_publishes_a_registered_candidates_changed_passed_courses(
    identity_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The application service learns the roster's 已合格课程 from events: a re-import that
    changes a registered candidate's passed courses appends CandidatePassedCoursesRecorded
    (course codes and ticket only) to the candidate's stream; nothing for anyone else."""
    await run(identity_pool, write(tmp_path / "a.csv", [line(i) for i in range(1, 5)]))
    registered = uuid.uuid4()
    async with identity_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO identity.candidate_accounts (candidate_id, ticket_number, id_lookup_hash,"
            " password_hash, mobile_encrypted, mobile_masked)"
            " VALUES ($1, '010118100002', $2, 'x', '\\x00', '138****5678')",
            registered,
            CIPHER.lookup_hash(id_number(2)),
        )
    changed = [line(1), line(2, courses="04729;00015；03706"), line(3, courses="00012"), line(4)]
    await run(identity_pool, write(tmp_path / "b.csv", changed))
    store = EventStore(identity_pool)
    [event] = await store.load("identity.candidate", str(registered))
    assert event.event_type == "CandidatePassedCoursesRecorded"
    assert event.payload == {
        "candidate_id": str(registered),
        "admission_ticket_number": "010118100002",
        "passed_course_codes": ["00015", "03706", "04729"],
    }
    assert event.actor.kind == "ops" and event.actor.id == "test"
    assert id_number(2) not in json.dumps(event.payload)
    async with identity_pool.acquire() as conn:
        others = await conn.fetchval(
            "SELECT count(*) FROM eventkit.events WHERE stream_type = 'identity.candidate'"
        )
    assert others == 1  # the unregistered row 3 changed too, but has no account to tell about

    await run(identity_pool, write(tmp_path / "c.csv", changed))  # nothing changed: no event
    await run(identity_pool, write(tmp_path / "d.csv", [*changed[:1], line(2, name="张叁",
              courses="00015;03706;04729"), *changed[2:]]))  # fmt: skip
    assert len(await store.load("identity.candidate", str(registered))) == 1  # courses the same


async def test_an_account_registered_before_passed_courses_were_published_gets_them_once(
    identity_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    lines = [line(1, courses="00015;03706")]
    await run(identity_pool, write(tmp_path / "a.csv", lines))
    legacy = uuid.uuid4()
    store = EventStore(identity_pool)
    async with identity_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO identity.candidate_accounts (candidate_id, ticket_number, id_lookup_hash,"
            " password_hash, mobile_encrypted, mobile_masked)"
            " VALUES ($1, '010118100001', $2, 'x', '\\x00', '138****5678')",
            legacy,
            CIPHER.lookup_hash(id_number(1)),
        )
    old_payload = {  # CandidateRegistered as published before it carried passed courses
        "candidate_id": str(legacy), "admission_ticket_number": "010118100001", "name": "张三",
        "gender": "male", "id_number_masked": id_number(1)[:4] + "*" * 10 + id_number(1)[-4:],
        "id_number_fingerprint": "f" * 64,
    }  # fmt: skip
    await store.append(
        "identity.candidate", str(legacy), 0,
        [NewEvent(event_type="CandidateRegistered", payload=old_payload)],
        Metadata(actor=Actor.system("t")),
    )  # fmt: skip
    await run(identity_pool, write(tmp_path / "b.csv", lines))  # unchanged rows
    events = await store.load("identity.candidate", str(legacy))
    assert [e.event_type for e in events] == [
        "CandidateRegistered",
        "CandidatePassedCoursesRecorded",
    ]
    assert events[1].payload["passed_course_codes"] == ["00015", "03706"]
    await run(identity_pool, write(tmp_path / "c.csv", lines))
    assert len(await store.load("identity.candidate", str(legacy))) == 2  # once only


async def test_bad_rows_are_reported_and_the_rest_load(
    identity_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    lines = [
        line(1),
        line(2, number="140105199001010031"),  # line 3: bad check digit
        line(3),
        line(4, name="A1"),  # line 5
        line(1, number=id_number(9)),  # line 6: ticket of line 2 again
        line(6),
    ]
    report = await run(identity_pool, write(tmp_path / "c.csv", lines))
    assert (report.rows_read, report.inserted, report.rejected) == (6, 3, 3)
    assert [(e.line_number, e.code) for e in report.errors] == [
        (3, "identity.id_number_checksum"),
        (5, "identity.roster_name"),
        (6, "identity.roster_duplicate_ticket_number"),
    ]
    async with identity_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM identity.roster") == 3


async def test_an_id_number_under_another_ticket_is_rejected(
    identity_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    await run(identity_pool, write(tmp_path / "a.csv", [line(1), line(2)]))
    report = await run(
        identity_pool,
        write(tmp_path / "b.csv", [line(3), line(4, number=id_number(1)), line(5)]),
        chunk_rows=2,
    )
    assert (report.inserted, report.rejected) == (2, 1)
    assert [(e.line_number, e.column, e.code) for e in report.errors] == [
        (3, "id_number", "identity.roster_id_number_taken")
    ]
    async with identity_pool.acquire() as conn:
        owner = await conn.fetchval(
            "SELECT ticket_number FROM identity.roster WHERE id_lookup_hash = $1",
            CIPHER.lookup_hash(id_number(1)),
        )
    assert owner == "010118100001"


async def test_the_database_never_holds_a_clear_id_number(
    identity_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    numbers = [id_number(i) for i in range(1, 6)]
    lines = [line(i) for i in range(1, 6)] + [line(7, number=numbers[0])]
    await run(identity_pool, write(tmp_path / "a.csv", lines, encoding="gb18030"))
    # The file's numbers anywhere, or any ID-shaped run standing alone (not inside a hex digest).
    clear = re.compile("|".join(numbers) + r"|(?<![0-9A-Za-z])\d{17}[\dX](?![0-9A-Za-z])")
    async with identity_pool.acquire() as conn:
        columns = await conn.fetch(
            """
            SELECT table_schema, table_name, column_name FROM information_schema.columns
            WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
              AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'ARRAY', 'bytea')
            """
        )
        scanned = 0
        for c in columns:
            values = await conn.fetch(
                f'SELECT "{c["column_name"]}"::text AS v'
                f' FROM "{c["table_schema"]}"."{c["table_name"]}"'
            )
            for v in values:
                scanned += 1
                assert v["v"] is None or not clear.search(v["v"]), (
                    f"{c['table_schema']}.{c['table_name']}.{c['column_name']}"
                )
        blobs = await conn.fetch("SELECT id_number_encrypted FROM identity.roster")
    assert scanned > 0
    for blob in blobs:
        assert not any(n.encode() in blob["id_number_encrypted"] for n in numbers)


def test_cli_import_prints_masked_errors(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = "140105199001010031"
    path = tmp_path / "roster.csv"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + ("\n".join([HEADER, line(1), line(2, number=bad), line(1)]) + "\n").encode()
    )
    assert main(["roster-import", str(path), "--dsn", database, "--actor", "ops:cli"]) == 1
    out = capsys.readouterr().out
    assert "新增 inserted 1" in out and "拒绝 rejected 2" in out
    assert "UTF-8 (BOM)" in out
    assert "第3行 line 3" in out and "第4行 line 4" in out
    assert bad not in out and id_number(1) not in out


def roster_cli(database: str, path: Path, *extra: str) -> int:
    return main(["roster-import", str(path), "--dsn", database, "--actor", "ops:cli", *extra])


def test_cli_exits_non_zero_when_every_row_is_rejected(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "roster.csv"
    bad = [line(i, number="140105199001010031") for i in (1, 2, 3)]
    path.write_text("\n".join([HEADER, *bad]) + "\n", encoding="utf-8")
    assert roster_cli(database, path) == 1
    captured = capsys.readouterr()
    assert "拒绝 rejected 3" in captured.out, "the report is printed all the same"
    assert "导入不完整" in captured.err and "--allow-partial" in captured.err
    assert roster_cli(database, path, "--allow-partial") == 1, "nothing loaded is no partial load"


def test_cli_accepts_a_partial_load_only_when_told(
    database: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "roster.csv"
    rows = [line(1), line(2, number="140105199001010031"), line(3)]
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    assert roster_cli(database, path) == 1
    assert "新增 inserted 2" in capsys.readouterr().out, "the valid rows are loaded"
    assert roster_cli(database, path, "--allow-partial") == 0
    assert "partial load accepted" in capsys.readouterr().err
    clean = tmp_path / "clean.csv"
    clean.write_text("\n".join([HEADER, line(1), line(3)]) + "\n", encoding="utf-8")
    assert roster_cli(database, clean) == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a,b\n1,2\n", "表头缺少列"),
        (b"\xff\xfe\x00\x00garbage", "编码无法识别"),
        (b"", "没有表头"),
    ],
)
def test_cli_refuses_unusable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = tmp_path / "roster.csv"
    path.write_bytes(content)
    assert main(["roster-import", str(path), "--dsn", "postgresql://nobody@127.0.0.1:1/x"]) == 2
    assert message in capsys.readouterr().err


def test_cli_refuses_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["roster-import", str(tmp_path / "nope.csv"), "--dsn", "postgresql://x@h/x"]) == 2
    assert "无法读取" in capsys.readouterr().err
