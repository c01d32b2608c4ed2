"""No route exempts a practical component, a thesis or a 考查 course (DOMAIN.md): the demo
catalogue's course flags, every route's course list, the rules (domain/rules.py), what the
portal offers (`rules.allowed_courses`) and the shared source table agree."""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

import pytest

from application_service.adapters.catalogue_files import DEMO_DIR, DEMO_VERSION, load_catalogue_dir
from application_service.domain import errors, rules
from application_service.domain.catalogue import (
    Assessment,
    Catalogue,
    Course,
    CourseKind,
    Level,
    Major,
    Plan,
    Route,
    RouteCourse,
)
from application_service.domain.evidence import CandidateFacts

pytestmark = pytest.mark.unit

SHARED_DEMO = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "catalogue-demo"
CANDIDATE = CandidateFacts(uuid.uuid4(), "张建国", enrolled=True, registered=True)


@pytest.fixture(scope="module")
def demo() -> Catalogue:
    load = load_catalogue_dir(DEMO_DIR, DEMO_VERSION)
    assert load.importable, load.errors
    return load.catalogue


def certificate_routes(catalogue: Catalogue) -> list[Route]:
    return [r for r in catalogue.routes.values() if not r.is_degree_route]


def test_every_route_course_of_the_demo_is_exemptible_in_every_major_that_has_it(
    demo: Catalogue,
) -> None:
    offending = [
        (route.route_id, major.code, course.code, course.name)
        for route in certificate_routes(demo)
        for route_course in route.courses
        for major in demo.majors.values()
        if (course := major.course(route_course.course_code)) is not None and not course.exemptible
    ]
    assert offending == []


def test_the_rules_and_the_portals_offer_agree_for_every_route_and_course_of_the_demo(
    demo: Catalogue,
) -> None:
    """Every (route, major, course) of the demo: offered (allowed_courses, what the portal
    lists) exactly when the rules accept the claim; a practical component, thesis or 考查
    course is neither offered nor accepted, refused as application.course_not_exemptible."""
    checked = 0
    for route in certificate_routes(demo):
        for major in demo.majors.values():
            if major.suspended:
                continue
            offered = set(rules.allowed_courses(route, major, CANDIDATE))
            assert offered <= {c.code for c in major.courses if c.exemptible}
            for course in major.courses:
                checked += 1
                if course.code in offered:
                    assert rules.check_route_course(route, major, course.code, CANDIDATE) is course
                    continue
                with pytest.raises(errors.ApplicationError) as refused:
                    rules.check_route_course(route, major, course.code, CANDIDATE)
                if major.family is not None and major.family in route.excluded_families:
                    assert refused.value.code == "application.major_family_excluded"
                elif not course.exemptible:
                    assert refused.value.code == "application.course_not_exemptible", (
                        route.route_id, major.code, course.code,
                    )  # fmt: skip
    assert checked > 1000


E1 = Course("00018", "计算机应用基础", 2, CourseKind.PUBLIC)
PRACTICAL = Course("00019", "计算机应用基础（实践）", 2, CourseKind.PRACTICAL, practical=True)
THESIS = Course("06999", "毕业论文", 0, CourseKind.THESIS, thesis=True)
ASSESSED = Course("03708", "中国近现代史纲要", 2, CourseKind.PUBLIC, Assessment.ASSESSMENT)
MAJOR = Major("999001", "测试专业", Level.JUNIOR_COLLEGE, Plan.NEW,
              courses=(E1, PRACTICAL, THESIS, ASSESSED))  # fmt: skip


@pytest.mark.parametrize("course", [PRACTICAL, THESIS, ASSESSED], ids=lambda c: c.code)
def test_a_route_that_names_an_unexemptible_course_still_cannot_exempt_it(course: Course) -> None:
    route = Route(
        "NCRE1", "ncre1_or_above", "全国计算机等级考试一级及以上",
        courses=(RouteCourse("00018"), RouteCourse(course.code)),
    )  # fmt: skip
    assert route.course_codes_for(MAJOR) == ("00018",)
    assert rules.allowed_courses(route, MAJOR, CANDIDATE) == ("00018",)
    with pytest.raises(errors.CourseNotExemptible) as refused:
        rules.check_route_course(route, MAJOR, course.code, CANDIDATE)
    assert refused.value.code == "application.course_not_exemptible"


def _shared_rows(name: str) -> list[dict[str, str]]:
    with (SHARED_DEMO / name).open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.skipif(not SHARED_DEMO.is_dir(), reason="shared/data/catalogue-demo not present")
def test_no_demo_route_names_a_course_the_shared_sources_call_practical(
    demo: Catalogue,
) -> None:
    """The shared (read-only) source table lists what provinces publish, practical components
    included (00019, 00052); the demo's routes are converted from it and leave those out: a
    course flagged practical in the shared courses, or named （实践） by the rule table."""
    flagged = {r["course_code"] for r in _shared_rows("courses.csv") if r.get("practical") == "Y"}
    named = {
        r["course_code"] for r in _shared_rows("exemption_rules.csv") if "实践" in r["course_name"]
    }
    assert {"00019", "00052"} <= flagged | named  # the sources do list them
    routed = {rc.course_code for r in certificate_routes(demo) for rc in r.courses}
    assert not routed & (flagged | named), sorted(routed & (flagged | named))
