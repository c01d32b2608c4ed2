"""The catalogue an application is checked against (pure data, versioned, imported by ops).

Majors (专业) of each plan (新旧计划) with their courses, confirmation points (免考确认点), and the
exemption route table: which certificate route may exempt which courses, under what conditions.
A `Catalogue` is immutable and carries its version; an application records the version it was
checked against, so a new import never changes the judgement of a submitted application.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Level(StrEnum):
    """层次 of a major, and of a course's or degree's level (values match contracts.DegreeLevel)."""

    JUNIOR_COLLEGE = "junior_college"  # 专科
    BACHELOR = "bachelor"  # 本科

    @property
    def label(self) -> str:
        """The Chinese label."""
        return {"junior_college": "专科", "bachelor": "本科"}[self.value]


class Plan(StrEnum):
    """新旧计划 (values match contracts.StudyPlan)."""

    OLD = "old"
    NEW = "new"


class Assessment(StrEnum):
    """考核方式 of a course in the catalogue."""

    EXAMINATION = "examination"  # 考试
    ASSESSMENT = "assessment"  # 考查: not exemptible


class CourseKind(StrEnum):
    """课程类型 as the catalogue files name them."""

    PUBLIC = "public"  # 公共课
    FOUNDATION = "foundation"  # 专业基础
    CORE = "core"  # 专业核心
    ELECTIVE = "elective"  # 选修
    PRACTICAL = "practical"  # 实践
    THESIS = "thesis"  # 毕业论文 / 毕业设计


def normalise_course_name(name: str) -> str:
    """The comparable form of a course name: NFKC (full-width brackets become half-width) and
    no whitespace; brackets and their content stay, since 英语(一) and 英语(二) differ."""
    return "".join(unicodedata.normalize("NFKC", name).split())


@dataclass(frozen=True, slots=True)
class Course:
    """A course of a major's plan."""

    code: str  # 5 digits, national course code
    name: str
    credits: float | None
    kind: CourseKind
    assessment: Assessment = Assessment.EXAMINATION
    practical: bool = False  # 实践 components (and internships)
    thesis: bool = False  # 毕业论文 / 毕业设计

    @property
    def exemptible(self) -> bool:
        """Practical components, theses and courses assessed by 考查 are never exempted, by any
        route: a rule table naming one (NCRE-1 → 00019 计算机应用基础（实践）) changes nothing."""
        return not (self.practical or self.thesis or self.assessment is Assessment.ASSESSMENT)

    @property
    def comparable_name(self) -> str:
        """The name as compared with a transcript's course names."""
        return normalise_course_name(self.name)


@dataclass(frozen=True, slots=True)
class Major:
    """A major (专业) of one plan, with its courses."""

    code: str  # 6 digits
    name: str
    level: Level
    plan: Plan
    suspended: bool = False  # 停考: no longer examined, shown as 停, not applicable
    family: str | None = None  # a group of related majors, for route conditions (e.g. "computing")
    courses: tuple[Course, ...] = ()

    def course(self, code: str) -> Course | None:
        """One of its courses by code."""
        for course in self.courses:
            if course.code == code:
                return course
        return None

    @property
    def label(self) -> str:
        """How the seed shows it: 580401 法律事务(专科)(旧)."""
        plan = "旧" if self.plan is Plan.OLD else "新"
        return f"{self.code} {self.name}({self.level.label})({plan})"


@dataclass(frozen=True, slots=True)
class ConfirmationPoint:
    """免考确认点: a district office where originals are checked (初审)."""

    point_id: str  # administrative division code, 6 digits
    name: str  # e.g. 太原市小店区


@dataclass(frozen=True, slots=True)
class RouteCourse:
    """A course a route may exempt, and at which major levels (empty: both)."""

    course_code: str
    levels: frozenset[Level] = frozenset()

    def applies_to(self, level: Level) -> bool:
        """Whether the route exempts this course for a major of `level`."""
        return not self.levels or level in self.levels


@dataclass(frozen=True, slots=True)
class Route:
    """An exemption route of the rule table: a certificate type, its conditions, its courses.

    Conditions are checked against the evidence (the certificate check's result from the exam
    authority, or the CHSI-verified degree): `min_level` (PETS level, NCRE level, CET band),
    `min_score` (CET score reports), `subject` (NCRE subject or NIT module that must match),
    `excluded_families` (e.g. NCRE-2 is not for computing majors).
    """

    route_id: str  # e.g. CET4, PETS2, NCRE2-C
    kind: str  # contracts.CertificateKind value
    name: str  # Chinese, shown in the wizard
    courses: tuple[RouteCourse, ...]
    exam: str | None = None  # contracts.CertificateExam value the evidence must come from
    min_level: int | None = None
    min_score: int | None = None
    subject: str | None = None
    excluded_families: frozenset[str] = frozenset()
    note: str | None = None  # the condition as the rule table words it

    def course_codes_for(self, major: Major) -> tuple[str, ...]:
        """The courses of `major` this route may exempt (whatever the evidence says)."""
        if major.family is not None and major.family in self.excluded_families:
            return ()
        codes = []
        for route_course in self.courses:
            course = major.course(route_course.course_code)
            if course is not None and course.exemptible and route_course.applies_to(major.level):
                codes.append(course.code)
        return tuple(codes)

    @property
    def is_degree_route(self) -> bool:
        """The prior-degree route (学历证书): courses come from the verified transcript."""
        return self.kind == "degree"


@dataclass(frozen=True, slots=True)
class DegreeRules:
    """The prior-degree route's rules (DOMAIN.md)."""

    min_score: float = 60.0  # passed on a 100-point scale
    max_share_for_non_zikao: float = 0.5  # at most half of a major's courses for such graduates
    hours_per_credit: int = 18


@dataclass(frozen=True, slots=True)
class Catalogue:
    """One imported version of the catalogue and rule table."""

    version: str
    majors: Mapping[tuple[str, Plan], Major]
    points: Mapping[str, ConfirmationPoint]
    routes: Mapping[str, Route]
    degree_rules: DegreeRules = field(default_factory=DegreeRules)

    def major(self, code: str, plan: Plan) -> Major | None:
        """A major of a plan."""
        return self.majors.get((code, plan))

    def majors_of(self, plan: Plan, level: Level | None = None) -> list[Major]:
        """The majors of a plan (and level), by code; suspended ones included (shown as 停)."""
        found = [
            m
            for (code, p), m in self.majors.items()
            if p is plan and (level is None or m.level is level)
        ]
        return sorted(found, key=lambda m: m.code)

    def point(self, point_id: str) -> ConfirmationPoint | None:
        """A confirmation point."""
        return self.points.get(point_id)

    def route(self, route_id: str) -> Route | None:
        """A route of the rule table."""
        return self.routes.get(route_id)

    def routes_of_kind(self, kind: str) -> list[Route]:
        """The routes a certificate type may use."""
        return sorted((r for r in self.routes.values() if r.kind == kind), key=lambda r: r.route_id)


def build_catalogue(
    version: str,
    majors: Iterable[Major],
    points: Iterable[ConfirmationPoint],
    routes: Iterable[Route],
    degree_rules: DegreeRules | None = None,
) -> Catalogue:
    """A catalogue from its parts (later duplicates are refused by the importer, not here)."""
    return Catalogue(
        version=version,
        majors={(m.code, m.plan): m for m in majors},
        points={p.point_id: p for p in points},
        routes={r.route_id: r for r in routes},
        degree_rules=degree_rules or DegreeRules(),
    )
