"""Reads a catalogue directory (UTF-8 CSV files, see data/README.md) into a `Catalogue`.

The loader never raises on bad data: every problem becomes a `CatalogueIssue` with its file, line
and column, a code, a Chinese message for ops and an English detail. Issues are errors or
warnings; a load with any error is not importable. The returned catalogue holds the rows that were
valid, so a report can still say what the rest of the files contain.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TypeVar

from application_service.domain.catalogue import (
    Assessment,
    Catalogue,
    ConfirmationPoint,
    Course,
    CourseKind,
    DegreeRules,
    Level,
    Major,
    Plan,
    Route,
    RouteCourse,
    build_catalogue,
)
from contracts.base import CertificateKind
from contracts.credential import CertificateExam

__all__ = [
    "DEMO_DIR",
    "DEMO_VERSION",
    "FILES",
    "CatalogueIssue",
    "CatalogueLoad",
    "Severity",
    "load_catalogue_dir",
]

DEMO_DIR = Path(__file__).resolve().parents[1] / "data" / "catalogue-demo"
DEMO_VERSION = "demo-2026.2"

MAJORS = "majors.csv"
COURSES = "courses.csv"
POINTS = "points.csv"
ROUTES = "routes.csv"
DEGREE_RULES = "degree_rules.csv"

# Required and optional columns of each file (degree_rules.csv itself is optional).
_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    MAJORS: (("code", "name", "level", "plan", "suspended"), ("family", "note")),
    COURSES: (
        ("major_code", "plan", "course_code", "course_name", "credits", "kind", "assessment"),
        ("practical", "note"),
    ),
    POINTS: (("point_id", "name"), ("note",)),
    ROUTES: (
        ("route_id", "kind", "name", "course_code"),
        (
            "exam",
            "min_level",
            "min_score",
            "subject",
            "excluded_families",
            "levels",
            "note",
            "source",
        ),
    ),
    DEGREE_RULES: (("key", "value"), ("note",)),
}
FILES: tuple[str, ...] = (MAJORS, COURSES, POINTS, ROUTES, DEGREE_RULES)
_REQUIRED_FILES = (MAJORS, COURSES, POINTS, ROUTES)

_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$")  # contracts.CatalogueVersion
_RULE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")  # contracts.RuleId
_MAJOR_CODE = re.compile(r"^\d{6}[A-Z]?$")
_COURSE_CODE = re.compile(r"^\d{5}$")
_POINT_ID = re.compile(r"^\d{6}$")
_FAMILY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
_MAX_TEXT = 200
_MAX_NUMBER = 1_000_000
_T = TypeVar("_T")

_LEVELS = {"专科": Level.JUNIOR_COLLEGE, "本科": Level.BACHELOR}
_PLANS = {"旧": Plan.OLD, "新": Plan.NEW}
_KINDS = {
    "公共课": CourseKind.PUBLIC,
    "专业基础": CourseKind.FOUNDATION,
    "专业核心": CourseKind.CORE,
    "选修": CourseKind.ELECTIVE,
    "实践": CourseKind.PRACTICAL,
    "毕业论文": CourseKind.THESIS,
}
_ASSESSMENTS = {"考试": Assessment.EXAMINATION, "考查": Assessment.ASSESSMENT}
_YES = {"Y": True, "N": False}
_SUSPENDED = {"Y": True, "停": True, "N": False, "": False}
_CERTIFICATE_KINDS = {k.value for k in CertificateKind}
_EXAMS = {e.value for e in CertificateExam}
_DEGREE_KEYS = {"min_score", "max_share_for_non_zikao", "hours_per_credit"}


class Severity:
    """An issue's weight: an error blocks the import, a warning is reported only."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class CatalogueIssue:
    """One problem of one file, line and column (line 0: the file as a whole)."""

    file: str
    line: int
    column: str | None
    code: str
    message_zh: str
    detail_en: str
    severity: str = Severity.ERROR

    @property
    def is_error(self) -> bool:
        """Whether it blocks the import."""
        return self.severity == Severity.ERROR

    def describe(self) -> str:
        """One line for a report: 文件 第N行 [列] code: 中文 / English."""
        where = f"{self.file} 第{self.line}行" if self.line else self.file
        column = f" [{self.column}]" if self.column else ""
        label = "错误" if self.is_error else "警告"
        return f"{label} {where}{column} {self.code}: {self.message_zh} / {self.detail_en}"


@dataclass
class CatalogueLoad:
    """What a directory held: the catalogue of its valid rows, every issue, the file checksums."""

    catalogue: Catalogue
    issues: list[CatalogueIssue] = field(default_factory=list)
    checksums: dict[str, str] = field(default_factory=dict)  # file name -> sha256 hex
    encodings: dict[str, str] = field(default_factory=dict)  # file name -> encoding read

    @property
    def errors(self) -> list[CatalogueIssue]:
        """The issues that block the import."""
        return [i for i in self.issues if i.is_error]

    @property
    def warnings(self) -> list[CatalogueIssue]:
        """The issues reported only."""
        return [i for i in self.issues if not i.is_error]

    @property
    def importable(self) -> bool:
        """No error: the catalogue may be stored."""
        return not self.errors


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    values: dict[str, str]


class _Head(NamedTuple):
    """A route's attributes, equal on every row of the route."""

    kind: str
    name: str
    exam: str | None
    min_level: int | None
    min_score: int | None
    subject: str | None
    excluded_families: frozenset[str]


class _Issues:
    def __init__(self) -> None:
        self.items: list[CatalogueIssue] = []

    def error(self, file: str, line: int, column: str | None, code: str, zh: str, en: str) -> None:
        self.items.append(CatalogueIssue(file, line, column, f"catalogue.{code}", zh, en))

    def warning(
        self, file: str, line: int, column: str | None, code: str, zh: str, en: str
    ) -> None:
        self.items.append(
            CatalogueIssue(file, line, column, f"catalogue.{code}", zh, en, Severity.WARNING)
        )


def _decode(name: str, data: bytes, issues: _Issues) -> tuple[str, str]:
    """The text of a file: UTF-8 (a BOM is accepted); GB18030 text is read but is an error."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
        encoding = "utf-8-sig"
    else:
        encoding = "utf-8"
    try:
        return data.decode("utf-8"), encoding
    except UnicodeDecodeError as exc:
        position = exc.start
    line = data[:position].count(b"\n") + 1
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        issues.error(
            name,
            line,
            None,
            "bad_encoding",
            "文件不是UTF-8编码，无法读取，请另存为UTF-8",
            f"not UTF-8 (first bad byte at offset {position}) and not GB18030 either",
        )
        return data.decode("utf-8", errors="replace"), "unknown"
    issues.error(
        name,
        line,
        None,
        "not_utf8",
        "文件疑似GBK/GB18030编码，请另存为UTF-8后重新导入",
        f"not UTF-8 (first bad byte at offset {position}); it reads as GB18030: save it as UTF-8",
    )
    return text, "gb18030"


def _rows(name: str, text: str, issues: _Issues) -> Iterator[_Row]:
    """The data rows of a CSV text (header checked), each with the line it starts on."""
    required, optional = _COLUMNS[name]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header: list[str] | None = None
        while header is None:
            row = next(reader, None)
            if row is None:
                issues.error(name, 0, None, "empty_file", "文件为空（没有表头）", "empty file")
                return
            if any(cell.strip() for cell in row):
                header = [cell.strip() for cell in row]
        header_line = reader.line_num
        missing = [c for c in required if c not in header]
        if missing:
            issues.error(
                name,
                header_line,
                ",".join(missing),
                "missing_columns",
                f"表头缺少列：{'、'.join(missing)}",
                f"header lacks the columns {', '.join(missing)}",
            )
            return
        duplicated = sorted({c for c in header if header.count(c) > 1})
        if duplicated:
            issues.error(
                name,
                header_line,
                ",".join(duplicated),
                "duplicate_columns",
                f"表头列重复：{'、'.join(duplicated)}",
                f"header repeats the columns {', '.join(duplicated)}",
            )
            return
        for column in header:
            if column not in required and column not in optional:
                issues.warning(
                    name,
                    header_line,
                    column,
                    "unknown_column",
                    f"未知的列“{column}”，已忽略",
                    f"unknown column {column!r} ignored",
                )
        count = 0
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader, None)
            except csv.Error as exc:
                issues.error(
                    name,
                    start,
                    None,
                    "bad_csv",
                    "CSV格式错误（引号或换行不匹配），其后内容未读取",
                    f"malformed CSV: {exc}; the rest of the file was not read",
                )
                return
            if row is None:
                break
            if not any(cell.strip() for cell in row):
                continue
            count += 1
            if len(row) != len(header):
                issues.error(
                    name,
                    start,
                    None,
                    "field_count",
                    f"该行有{len(row)}列，表头有{len(header)}列",
                    f"{len(row)} fields, the header has {len(header)}",
                )
                continue
            values = {h: cell.strip() for h, cell in zip(header, row, strict=True)}
            yield _Row(start, values)
        if count == 0:
            issues.error(name, 0, None, "no_rows", "文件没有数据行", "no data rows")
    except csv.Error as exc:
        issues.error(name, 0, None, "bad_csv", "CSV格式错误，文件无法读取", f"malformed CSV: {exc}")


class _Loader:
    def __init__(self, version: str) -> None:
        self.version = version
        self.issues = _Issues()
        self.majors: dict[tuple[str, Plan], Major] = {}
        self.major_lines: dict[tuple[str, Plan], int] = {}
        self.courses: dict[tuple[str, Plan], list[Course]] = {}
        self.points: list[ConfirmationPoint] = []
        self.routes: list[Route] = []
        self.degree_rules = DegreeRules()

    # --- cell helpers --------------------------------------------------------------------------

    def _text(self, file: str, row: _Row, column: str, *, required: bool = True) -> str | None:
        value = row.values.get(column, "")
        if not value:
            if required:
                self.issues.error(
                    file, row.line, column, "missing_value", f"“{column}”不能为空", "empty value"
                )
            return None
        if len(value) > _MAX_TEXT or any(ord(ch) < 32 for ch in value):
            self.issues.error(
                file,
                row.line,
                column,
                "bad_text",
                f"“{column}”过长或含控制字符",
                f"longer than {_MAX_TEXT} characters or contains control characters",
            )
            return None
        return value

    def _pattern(
        self, file: str, row: _Row, column: str, pattern: re.Pattern[str], what_zh: str
    ) -> str | None:
        value = row.values.get(column, "")
        if pattern.match(value):
            return value
        self.issues.error(
            file,
            row.line,
            column,
            "bad_code",
            f"{what_zh}格式不正确：“{value[:40]}”",
            f"{column} {value[:40]!r} does not match {pattern.pattern}",
        )
        return None

    def _choice(
        self, file: str, row: _Row, column: str, choices: Mapping[str, _T], code: str
    ) -> _T | None:
        value = row.values.get(column, "")
        if value in choices:
            return choices[value]
        allowed = "/".join(k for k in choices if k) or "-"
        self.issues.error(
            file,
            row.line,
            column,
            code,
            f"“{column}”的值“{value[:40]}”不在允许范围内（{allowed}）",
            f"{column} {value[:40]!r} is not one of {allowed}",
        )
        return None

    def _number(
        self, file: str, row: _Row, column: str, *, integer: bool, minimum: float = 0
    ) -> tuple[bool, float | None]:
        value = row.values.get(column, "")
        if not value:
            return True, None
        try:
            number = float(int(value)) if integer else float(value)
        except (ValueError, OverflowError):
            number = float("nan")
        if not minimum <= number <= _MAX_NUMBER:
            kind = "整数" if integer else "数字"
            self.issues.error(
                file,
                row.line,
                column,
                "bad_number",
                f"“{column}”须为{minimum:g}至{_MAX_NUMBER}之间的{kind}：“{value[:40]}”",
                f"{column} {value[:40]!r} is not a {'whole ' if integer else ''}number"
                f" between {minimum:g} and {_MAX_NUMBER}",
            )
            return False, None
        return True, number

    # --- files ---------------------------------------------------------------------------------

    def majors_file(self, rows: Iterator[_Row]) -> None:
        for row in rows:
            code = self._pattern(MAJORS, row, "code", _MAJOR_CODE, "专业代码")
            name = self._text(MAJORS, row, "name")
            level = self._choice(MAJORS, row, "level", _LEVELS, "unknown_level")
            plan = self._choice(MAJORS, row, "plan", _PLANS, "unknown_plan")
            suspended = self._choice(MAJORS, row, "suspended", _SUSPENDED, "bad_flag")
            family = row.values.get("family") or None
            ok_family = family is None or bool(_FAMILY.match(family))
            if not ok_family:
                self.issues.error(
                    MAJORS,
                    row.line,
                    "family",
                    "bad_family",
                    f"专业组“{(family or '')[:40]}”格式不正确（小写字母、数字、-、_）",
                    "family must be lower-case letters, digits, '-' or '_'",
                )
            if None in (code, name, level, plan, suspended) or not ok_family:
                continue
            assert code is not None and name is not None
            assert level is not None and plan is not None
            key = (code, plan)
            if key in self.majors:
                self.issues.error(
                    MAJORS,
                    row.line,
                    "code",
                    "duplicate_major",
                    f"专业{code}（{row.values['plan']}计划）重复，首次出现在第{self.major_lines[key]}行",
                    f"major {code} ({plan.value} plan) repeats line {self.major_lines[key]}",
                )
                continue
            self.majors[key] = Major(code, name, level, plan, bool(suspended), family)
            self.major_lines[key] = row.line
            self.courses[key] = []

    def courses_file(self, rows: Iterator[_Row]) -> None:
        seen: dict[tuple[str, Plan, str], int] = {}
        names: dict[str, tuple[str, int]] = {}
        for row in rows:
            major_code = self._pattern(COURSES, row, "major_code", _MAJOR_CODE, "专业代码")
            plan = self._choice(COURSES, row, "plan", _PLANS, "unknown_plan")
            code = self._pattern(COURSES, row, "course_code", _COURSE_CODE, "课程代码")
            name = self._text(COURSES, row, "course_name")
            ok_credits, credits = self._number(COURSES, row, "credits", integer=False)
            kind = self._choice(COURSES, row, "kind", _KINDS, "unknown_kind")
            assessment = self._choice(
                COURSES, row, "assessment", _ASSESSMENTS, "unknown_assessment"
            )
            practical_text = row.values.get("practical", "") or "N"
            practical = _YES.get(practical_text)
            if practical is None:
                self.issues.error(
                    COURSES,
                    row.line,
                    "practical",
                    "bad_flag",
                    f"“practical”须为Y或N：“{practical_text[:40]}”",
                    "practical must be Y or N",
                )
            elif kind is CourseKind.PRACTICAL and not practical:
                self.issues.error(
                    COURSES,
                    row.line,
                    "practical",
                    "practical_mismatch",
                    "课程类型为“实践”时practical必须为Y",
                    "a course of kind 实践 must have practical = Y",
                )
                practical = None
            if (
                major_code is None
                or plan is None
                or code is None
                or name is None
                or not ok_credits
                or kind is None
                or assessment is None
                or practical is None
            ):
                continue
            if (major_code, plan) not in self.majors:
                self.issues.error(
                    COURSES,
                    row.line,
                    "major_code",
                    "unknown_major",
                    f"majors.csv中没有专业{major_code}（{row.values['plan']}计划）",
                    f"no major {major_code} of the {plan.value} plan in majors.csv",
                )
                continue
            key = (major_code, plan, code)
            if key in seen:
                self.issues.error(
                    COURSES,
                    row.line,
                    "course_code",
                    "duplicate_course",
                    f"专业{major_code}（{row.values['plan']}计划）的课程{code}重复，"
                    f"首次出现在第{seen[key]}行",
                    f"course {code} of major {major_code} ({plan.value}) repeats line {seen[key]}",
                )
                continue
            seen[key] = row.line
            first = names.setdefault(code, (name, row.line))
            if first[0] != name:
                self.issues.warning(
                    COURSES,
                    row.line,
                    "course_name",
                    "course_name_differs",
                    f"课程{code}名称“{name}”与第{first[1]}行的“{first[0]}”不同",
                    f"course {code} is named differently on line {first[1]}",
                )
            self.courses[(major_code, plan)].append(
                Course(
                    code=code,
                    name=name,
                    credits=credits,
                    kind=kind,
                    assessment=assessment,
                    practical=practical,
                    thesis=kind is CourseKind.THESIS,
                )
            )

    def points_file(self, rows: Iterator[_Row]) -> None:
        seen: dict[str, int] = {}
        for row in rows:
            point_id = self._pattern(POINTS, row, "point_id", _POINT_ID, "确认点代码")
            name = self._text(POINTS, row, "name")
            if point_id is None or name is None:
                continue
            if point_id in seen:
                self.issues.error(
                    POINTS,
                    row.line,
                    "point_id",
                    "duplicate_point",
                    f"确认点{point_id}重复，首次出现在第{seen[point_id]}行",
                    f"point {point_id} repeats line {seen[point_id]}",
                )
                continue
            seen[point_id] = row.line
            self.points.append(ConfirmationPoint(point_id, name))

    def routes_file(self, rows: Iterator[_Row]) -> None:
        heads: dict[str, tuple[_Head, int]] = {}
        notes: dict[str, str | None] = {}
        courses: dict[str, list[RouteCourse]] = {}
        course_lines: dict[tuple[str, str], int] = {}
        empty_rows: dict[str, int] = {}
        broken: set[str] = set()
        for row in rows:
            route_id = self._pattern(ROUTES, row, "route_id", _RULE_ID, "规则编号")
            kind = self._choice(
                ROUTES, row, "kind", {k: k for k in _CERTIFICATE_KINDS}, "unknown_route_kind"
            )
            name = self._text(ROUTES, row, "name")
            exam = self._choice(
                ROUTES, row, "exam", {"": "", **{e: e for e in _EXAMS}}, "unknown_exam"
            )
            ok_level, min_level = self._number(ROUTES, row, "min_level", integer=True, minimum=1)
            ok_score, min_score = self._number(ROUTES, row, "min_score", integer=True)
            subject = self._text(ROUTES, row, "subject", required=False)
            note = self._text(ROUTES, row, "note", required=False)
            families_text = row.values.get("excluded_families", "")
            families = frozenset(f.strip() for f in families_text.split(";") if f.strip())
            bad_families = sorted(f for f in families if not _FAMILY.match(f))
            if bad_families:
                self.issues.error(
                    ROUTES,
                    row.line,
                    "excluded_families",
                    "bad_family",
                    f"专业组格式不正确：{'、'.join(x[:40] for x in bad_families)}",
                    "families must be lower-case letters, digits, '-' or '_', separated by ';'",
                )
            levels_ok, levels = self._levels(row)
            course_text = row.values.get("course_code", "")
            course_code: str | None = ""
            if course_text:
                course_code = self._pattern(ROUTES, row, "course_code", _COURSE_CODE, "课程代码")
            if (
                route_id is None
                or kind is None
                or name is None
                or exam is None
                or not (ok_level and ok_score and levels_ok)
                or bad_families
                or course_code is None
                or (row.values.get("subject") and subject is None)
                or (row.values.get("note") and note is None)
            ):
                if route_id is not None:
                    broken.add(route_id)
                continue
            head = _Head(
                kind,
                name,
                exam or None,
                None if min_level is None else int(min_level),
                None if min_score is None else int(min_score),
                subject,
                families,
            )
            if route_id not in heads:
                heads[route_id] = (head, row.line)
                notes[route_id] = note
                courses[route_id] = []
            else:
                first, first_line = heads[route_id]
                if first != head or (note and notes[route_id] and note != notes[route_id]):
                    self.issues.error(
                        ROUTES,
                        row.line,
                        "route_id",
                        "route_conflict",
                        f"规则{route_id}的属性（类型、名称、条件等）与第{first_line}行不一致",
                        f"route {route_id}'s attributes differ from line {first_line}",
                    )
                    broken.add(route_id)
                    continue
                notes[route_id] = notes[route_id] or note
            if not course_code:
                empty_rows.setdefault(route_id, row.line)
                continue
            if (route_id, course_code) in course_lines:
                self.issues.error(
                    ROUTES,
                    row.line,
                    "course_code",
                    "duplicate_route_course",
                    f"规则{route_id}的课程{course_code}重复，"
                    f"首次出现在第{course_lines[(route_id, course_code)]}行",
                    f"course {course_code} repeats in route {route_id}",
                )
                broken.add(route_id)
                continue
            course_lines[(route_id, course_code)] = row.line
            courses[route_id].append(RouteCourse(course_code, levels))
        known_courses = {c.code for cs in self.courses.values() for c in cs}
        # Where a course is never exemptible (practical, thesis, 考查): no route may name it.
        unexemptible: dict[str, str] = {}
        for (major_code, _plan), major_courses in self.courses.items():
            for c in major_courses:
                if not c.exemptible:
                    unexemptible.setdefault(c.code, major_code)
        for route_id, (head, line) in heads.items():
            kind = head.kind
            route_courses = tuple(courses[route_id])
            if kind == CertificateKind.DEGREE.value and route_courses:
                self.issues.error(
                    ROUTES,
                    line,
                    "course_code",
                    "degree_route_courses",
                    f"学历证书规则{route_id}不能列课程（课程来自成绩单），course_code须为空",
                    f"degree route {route_id} takes its courses from the transcript: no course",
                )
                continue
            if kind != CertificateKind.DEGREE.value and not route_courses:
                self.issues.error(
                    ROUTES,
                    line,
                    "course_code",
                    "route_without_courses",
                    f"规则{route_id}没有可免考的课程",
                    f"route {route_id} lists no course",
                )
                continue
            if route_courses and route_id in empty_rows:
                self.issues.error(
                    ROUTES,
                    empty_rows[route_id],
                    "course_code",
                    "missing_value",
                    f"规则{route_id}的这一行缺少课程代码",
                    "empty course_code in a route that lists courses",
                )
                continue
            if route_id in broken:
                continue
            refused = [rc for rc in route_courses if rc.course_code in unexemptible]
            for route_course in refused:
                code = route_course.course_code
                self.issues.error(
                    ROUTES,
                    course_lines[(route_id, code)],
                    "course_code",
                    "route_course_not_exemptible",
                    f"课程{code}在专业{unexemptible[code]}中为实践环节、毕业论文（设计）或考查课程，"
                    "不能列入免考规则",
                    f"course {code} is practical, a thesis or assessed (考查) in major"
                    f" {unexemptible[code]}: no route may exempt it",
                )
            if refused:
                continue
            for route_course in route_courses:
                if route_course.course_code not in known_courses:
                    self.issues.warning(
                        ROUTES,
                        course_lines[(route_id, route_course.course_code)],
                        "course_code",
                        "route_course_unused",
                        f"没有任何专业开设课程{route_course.course_code}，该条规则暂不起作用",
                        f"no major has course {route_course.course_code}",
                    )
            self.routes.append(
                Route(
                    route_id=route_id,
                    kind=head.kind,
                    name=head.name,
                    courses=route_courses,
                    exam=head.exam,
                    min_level=head.min_level,
                    min_score=head.min_score,
                    subject=head.subject,
                    excluded_families=head.excluded_families,
                    note=notes[route_id],
                )
            )

    def _levels(self, row: _Row) -> tuple[bool, frozenset[Level]]:
        text = row.values.get("levels", "")
        parts = [p.strip() for p in text.split(";") if p.strip()]
        unknown = [p for p in parts if p not in _LEVELS]
        if unknown:
            self.issues.error(
                ROUTES,
                row.line,
                "levels",
                "unknown_level",
                f"层次“{'、'.join(u[:20] for u in unknown)}”不正确（专科;本科 或留空）",
                "levels must be 专科, 本科 or both separated by ';', or empty",
            )
            return False, frozenset()
        return True, frozenset(_LEVELS[p] for p in parts)

    def degree_rules_file(self, rows: Iterator[_Row]) -> None:
        values: dict[str, float] = {}
        for row in rows:
            key = row.values.get("key", "")
            if key not in _DEGREE_KEYS:
                self.issues.error(
                    DEGREE_RULES,
                    row.line,
                    "key",
                    "unknown_key",
                    f"未知的学历规则项“{key[:40]}”（{'/'.join(sorted(_DEGREE_KEYS))}）",
                    f"unknown key {key[:40]!r}",
                )
                continue
            if key in values:
                self.issues.error(
                    DEGREE_RULES, row.line, "key", "duplicate_key", f"“{key}”重复", "repeated key"
                )
                continue
            integer = key == "hours_per_credit"
            ok, number = self._number(DEGREE_RULES, row, "value", integer=integer)
            if not ok:
                continue
            if number is None or (key == "max_share_for_non_zikao" and number > 1):
                self.issues.error(
                    DEGREE_RULES,
                    row.line,
                    "value",
                    "bad_number",
                    f"“{key}”的值不正确",
                    f"{key} needs a value (a share is at most 1)",
                )
                continue
            if integer and number < 1:
                self.issues.error(
                    DEGREE_RULES, row.line, "value", "bad_number", "每学分学时须≥1", "must be >= 1"
                )
                continue
            values[key] = number
        defaults = DegreeRules()
        self.degree_rules = DegreeRules(
            min_score=values.get("min_score", defaults.min_score),
            max_share_for_non_zikao=values.get(
                "max_share_for_non_zikao", defaults.max_share_for_non_zikao
            ),
            hours_per_credit=int(values.get("hours_per_credit", defaults.hours_per_credit)),
        )

    def finish(self) -> Catalogue:
        for key, major in self.majors.items():
            if not self.courses[key]:
                self.issues.warning(
                    MAJORS,
                    self.major_lines[key],
                    "code",
                    "major_without_courses",
                    f"专业{major.code}在courses.csv中没有课程",
                    f"major {major.code} ({major.plan.value}) has no course",
                )
        present = {r.kind for r in self.routes}
        for kind in CertificateKind:
            if kind.value not in present:
                self.issues.warning(
                    ROUTES,
                    0,
                    "kind",
                    "kind_without_route",
                    f"证书类型“{kind.value}”没有任何规则，考生无法选用",
                    f"no route for certificate kind {kind.value}",
                )
        majors = [
            Major(m.code, m.name, m.level, m.plan, m.suspended, m.family, tuple(self.courses[key]))
            for key, m in self.majors.items()
        ]
        return build_catalogue(self.version, majors, self.points, self.routes, self.degree_rules)


def load_catalogue_dir(path: Path | str, version: str) -> CatalogueLoad:
    """Read a catalogue directory; never raises on bad data (every problem is an issue)."""
    directory = Path(path)
    loader = _Loader(version)
    issues = loader.issues
    checksums: dict[str, str] = {}
    encodings: dict[str, str] = {}
    if not _VERSION.match(version):
        issues.error(
            "-",
            0,
            None,
            "bad_version",
            f"版本号“{version[:70]}”格式不正确（字母、数字、.、_、-，最长64位）",
            "version must match ^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$",
        )
    texts: dict[str, str | None] = {}
    for name in FILES:
        file_path = directory / name
        try:
            data = file_path.read_bytes()
        except FileNotFoundError:
            if name in _REQUIRED_FILES:
                issues.error(name, 0, None, "missing_file", "缺少文件", f"{name} is missing")
            texts[name] = None
            continue
        except OSError as exc:
            issues.error(name, 0, None, "unreadable_file", "文件无法读取", str(exc))
            texts[name] = None
            continue
        checksums[name] = hashlib.sha256(data).hexdigest()
        text, encodings[name] = _decode(name, data, issues)
        if "\x00" in text:
            issues.error(name, 0, None, "bad_text", "文件含有空字符（NUL）", "file contains NUL")
            text = text.replace("\x00", "")
        texts[name] = text
    steps: Sequence[tuple[str, Callable[[Iterator[_Row]], None]]] = (
        (MAJORS, loader.majors_file),
        (COURSES, loader.courses_file),
        (POINTS, loader.points_file),
        (ROUTES, loader.routes_file),
        (DEGREE_RULES, loader.degree_rules_file),
    )
    for name, step in steps:
        content = texts.get(name)
        if content is not None:
            step(_rows(name, content, issues))
    catalogue = loader.finish()
    issues.items.sort(key=lambda i: (FILES.index(i.file) if i.file in FILES else -1, i.line))
    return CatalogueLoad(catalogue, issues.items, checksums, encodings)
