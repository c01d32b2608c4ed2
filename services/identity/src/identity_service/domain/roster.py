"""在籍考生名册: the enrolment roster's row, its CSV format, and the event of an import."""

from __future__ import annotations

import csv
import re
import unicodedata
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import ClassVar

from pydantic import Field

from contracts.identity import Gender
from eventkit.envelope import DomainEvent
from identity_service.domain.errors import DomainError
from identity_service.domain.id_card import IdCardNumber

ROSTER_STREAM_TYPE = "identity.roster"
"""Private stream type (never routed to Kafka): one stream recording every roster import."""
ROSTER_STREAM_ID = "enrolment-roster"

COLUMNS = (
    "ticket_number",
    "id_number",
    "name",
    "gender",
    "exam_district",
    "registration_district",
    "major_code",
    "passed_courses",
)
CHINESE_HEADERS = {
    "准考证号": "ticket_number",
    "身份证号": "id_number",
    "姓名": "name",
    "性别": "gender",
    "考区": "exam_district",
    "报名区县": "registration_district",
    "专业代码": "major_code",
    "已合格课程": "passed_courses",
}
COLUMN_LABELS = {v: k for k, v in CHINESE_HEADERS.items()}

_TICKET = re.compile(r"^[0-9]{10,15}$")
_DISTRICT = re.compile(r"^[0-9]{6}$")
_MAJOR = re.compile(r"^[0-9]{6}[A-Z]?$")
_COURSE = re.compile(r"^[0-9]{5}$")
_COURSE_SEPARATORS = re.compile(r"[;；|\s]+")
_NAME = re.compile(
    r"^[A-Za-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"
    r"(?:[A-Za-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f·]*"
    r"[A-Za-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f])?$"
)
# Middle dots people type in transliterated names (e.g. 阿依古丽·买买提), folded to U+00B7.
_MIDDLE_DOTS = str.maketrans({"•": "·", "・": "·", "‧": "·", "∙": "·", "⋅": "·", "．": "·"})
_GENDERS = {"男": Gender.MALE, "女": Gender.FEMALE, "male": Gender.MALE, "female": Gender.FEMALE}
MAX_NAME_LENGTH = 30


class RosterHeaderError(DomainError):
    """名册表头无效: the file cannot be read as a roster at all."""

    code = "identity.roster_header"


@dataclass(frozen=True)
class RowError:
    """One problem with one line of the file; never carries an unmasked ID-card number."""

    line_number: int
    column: str | None
    code: str
    message_zh: str


@dataclass(frozen=True)
class RosterRow:
    """在籍考生: one valid line of the roster."""

    line_number: int
    ticket_number: str
    id_number: IdCardNumber
    name: str
    gender: Gender
    exam_district: str
    registration_district: str
    major_code: str
    passed_courses: tuple[str, ...]


@dataclass(frozen=True)
class RejectedRow:
    """A line that will not load, with every problem found on it."""

    line_number: int
    errors: tuple[RowError, ...]


class EnrolmentRosterImported(DomainEvent):
    """在籍考生名册导入: ops imported a roster file; counts only, no personal data."""

    event_type: ClassVar[str] = "EnrolmentRosterImported"

    import_id: uuid.UUID
    file_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows_read: int = Field(ge=0)
    rows_inserted: int = Field(ge=0)
    rows_updated: int = Field(ge=0)
    rows_unchanged: int = Field(ge=0)
    rows_rejected: int = Field(ge=0)


def read_header(cells: list[str]) -> dict[str, int]:
    """Map each roster column to its index; Chinese or English names, any order, BOM tolerated."""
    positions: dict[str, int] = {}
    for index, raw in enumerate(cells):
        label = unicodedata.normalize("NFKC", raw.lstrip("\ufeff")).strip()
        column = CHINESE_HEADERS.get(label) or (label.lower() if label.lower() in COLUMNS else None)
        if column is None:
            continue
        if column in positions:
            raise RosterHeaderError(
                f"表头中“{COLUMN_LABELS[column]}”列重复",
                f"column {column} appears twice in the header",
            )
        positions[column] = index
    missing = [c for c in COLUMNS if c not in positions]
    if missing:
        raise RosterHeaderError(
            "表头缺少列：" + "、".join(COLUMN_LABELS[c] for c in missing),
            "header is missing columns: " + ", ".join(missing),
        )
    return positions


def parse_roster(lines: Iterable[str], *, today: date) -> Iterator[RosterRow | RejectedRow]:
    """Parse a roster CSV line by line (streaming); the first non-blank line is the header.

    Raises RosterHeaderError when there is no usable header; every bad row is yielded as a
    RejectedRow with its line number and the rest keep coming. A ticket or ID-card number seen on
    an earlier valid line rejects the later line.
    """
    reader = csv.reader(lines)
    positions: dict[str, int] | None = None
    seen_tickets: dict[str, int] = {}
    seen_ids: dict[str, int] = {}
    last_line = 0
    width = needed = 0
    for cells in reader:
        line_number = last_line + 1
        last_line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if positions is None:
            positions = read_header(cells)
            width = len(cells)
            needed = max(positions.values()) + 1
            continue
        # A row wider than the header usually hides an unquoted comma that shifted the fields.
        if not needed <= len(cells) <= width:
            yield RejectedRow(
                line_number,
                (
                    RowError(
                        line_number,
                        None,
                        "identity.roster_row_width",
                        f"本行有{len(cells)}列，与表头的{width}列不一致",
                    ),
                ),
            )
            continue
        result = parse_row(line_number, {c: cells[i] for c, i in positions.items()}, today=today)
        if isinstance(result, RejectedRow):
            yield result
            continue
        duplicates = []
        first = seen_tickets.get(result.ticket_number)
        if first is not None:
            duplicates.append(
                RowError(
                    line_number,
                    "ticket_number",
                    "identity.roster_duplicate_ticket_number",
                    f"准考证号与第{first}行重复",
                )
            )
        first = seen_ids.get(result.id_number.value)
        if first is not None:
            duplicates.append(
                RowError(
                    line_number,
                    "id_number",
                    "identity.roster_duplicate_id_number",
                    f"身份证号与第{first}行重复",
                )
            )
        if duplicates:
            yield RejectedRow(line_number, tuple(duplicates))
            continue
        seen_tickets[result.ticket_number] = line_number
        seen_ids[result.id_number.value] = line_number
        yield result
    if positions is None:
        raise RosterHeaderError("文件为空或没有表头", "file is empty or has no header row")


def parse_row(line_number: int, raw: dict[str, str], *, today: date) -> RosterRow | RejectedRow:
    """Validate the fields of one line."""
    errors: list[RowError] = []

    def fail(column: str, code: str, message: str) -> None:
        errors.append(RowError(line_number, column, code, message))

    def text(column: str) -> str:
        return unicodedata.normalize("NFKC", raw[column]).strip()

    ticket = text("ticket_number")
    if not _TICKET.match(ticket):
        fail("ticket_number", "identity.roster_ticket_number", "准考证号应为10至15位数字")

    id_result = IdCardNumber.check(raw["id_number"], today=today)
    if not isinstance(id_result, IdCardNumber):
        fail("id_number", id_result.code, id_result.message)

    name = text("name").translate(_MIDDLE_DOTS)
    if not name:
        fail("name", "identity.roster_name", "姓名不能为空")
    elif len(name) > MAX_NAME_LENGTH:
        fail("name", "identity.roster_name", f"姓名不能超过{MAX_NAME_LENGTH}个字")
    elif not _NAME.match(name):
        fail("name", "identity.roster_name", "姓名只能包含汉字、字母和间隔号“·”")

    gender = _GENDERS.get(text("gender").lower())
    if gender is None:
        fail("gender", "identity.roster_gender", "性别应为“男”或“女”")
    elif isinstance(id_result, IdCardNumber) and id_result.gender != gender:
        fail("gender", "identity.roster_gender_mismatch", "性别与身份证号不一致")

    exam_district = text("exam_district")
    if not _DISTRICT.match(exam_district):
        fail("exam_district", "identity.roster_exam_district", "考区应为6位数字代码")
    registration_district = text("registration_district")
    if not _DISTRICT.match(registration_district):
        fail(
            "registration_district",
            "identity.roster_registration_district",
            "报名区县应为6位数字代码",
        )

    major = text("major_code").upper()
    if not _MAJOR.match(major):
        fail("major_code", "identity.roster_major_code", "专业代码应为6位数字，可带一个字母")

    courses = [c for c in _COURSE_SEPARATORS.split(text("passed_courses")) if c]
    bad = [c for c in courses if not _COURSE.match(c)]
    if bad:
        fail(
            "passed_courses",
            "identity.roster_passed_courses",
            f"已合格课程代码应为5位数字，以分号、竖线或空格分隔（{len(bad)}个无效）",
        )

    if errors or gender is None or not isinstance(id_result, IdCardNumber):
        return RejectedRow(line_number, tuple(errors))
    return RosterRow(
        line_number=line_number,
        ticket_number=ticket,
        id_number=id_result,
        name=name,
        gender=gender,
        exam_district=exam_district,
        registration_district=registration_district,
        major_code=major,
        passed_courses=tuple(sorted(set(courses))),
    )
