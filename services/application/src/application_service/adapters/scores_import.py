"""成绩合格记录: import the courses candidates have passed, so they are never claimed again.

A UTF-8 (or GB18030) CSV with a header: 准考证号,课程代码,合格日期 (or admission_ticket_number,
course_code,passed_on); the date may be empty. Every bad row is reported; a file with any bad row
stores nothing. Importing again adds and updates rows (a score record only grows).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import asyncpg

TICKET = re.compile(r"^\d{10,15}$")
COURSE = re.compile(r"^\d{5}$")
HEADERS = {
    "准考证号": "ticket",
    "admission_ticket_number": "ticket",
    "课程代码": "course",
    "course_code": "course",
    "合格日期": "passed_on",
    "passed_on": "passed_on",
}


@dataclass
class ScoresFile:
    """A parsed score file: its rows, and every problem with a line number."""

    rows: list[tuple[str, str, date | None]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sha256: str = ""


def parse_scores(data: bytes) -> ScoresFile:
    """Parse a score file; never raises on bad data."""
    result = ScoresFile(sha256=hashlib.sha256(data).hexdigest())
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            result.errors.append("第1行 line 1: 文件编码无法识别 (not UTF-8 or GB18030)")
            return result
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        result.errors.append("第1行 line 1: 文件为空 (empty file)")
        return result
    columns = [HEADERS.get(h.strip()) for h in header]
    if "ticket" not in columns or "course" not in columns:
        result.errors.append("第1行 line 1: 缺少 准考证号/课程代码 列 (missing columns)")
        return result
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(columns):
            result.errors.append(f"第{number}行 line {number}: 列数不对 ({len(cells)} cells)")
            continue
        values = {k: v.strip() for k, v in zip(columns, cells, strict=True) if k}
        ticket, course = values.get("ticket", ""), values.get("course", "")
        if not TICKET.match(ticket):
            result.errors.append(f"第{number}行 line {number}: 准考证号不正确 (ticket number)")
            continue
        if not COURSE.match(course):
            result.errors.append(f"第{number}行 line {number}: 课程代码须为5位数字 (course code)")
            continue
        passed_on: date | None = None
        if values.get("passed_on"):
            try:
                passed_on = date.fromisoformat(values["passed_on"])
            except ValueError:
                result.errors.append(f"第{number}行 line {number}: 合格日期不正确 (date)")
                continue
        result.rows.append((ticket, course, passed_on))
    return result


async def import_scores(
    pool: asyncpg.Pool, path: Path, parsed: ScoresFile, actor: str
) -> uuid.UUID:
    """Store a clean score file in one transaction; returns the import id."""
    if parsed.errors:
        raise ValueError("a score file with errors is not imported")
    import_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO application.score_imports (import_id, file_name, sha256, rows,"
            " imported_by) VALUES ($1, $2, $3, $4, $5)",
            import_id,
            path.name,
            parsed.sha256,
            len(parsed.rows),
            actor,
        )
        await conn.executemany(
            """
            INSERT INTO application.passed_courses (admission_ticket_number, course_code,
                passed_on, import_id)
            VALUES ($1, $2, $3, $4)
            ON CONFLICT (admission_ticket_number, course_code) DO UPDATE SET
                passed_on = coalesce(EXCLUDED.passed_on, application.passed_courses.passed_on),
                import_id = EXCLUDED.import_id
            """,
            [(t, c, d, import_id) for t, c, d in parsed.rows],
        )
    return import_id
