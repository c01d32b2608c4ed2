"""The catalogue loader: the shipped demo loads cleanly; every kind of bad row is reported."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from application_service.adapters.catalogue_files import (
    DEMO_DIR,
    DEMO_VERSION,
    FILES,
    load_catalogue_dir,
)
from application_service.domain.catalogue import (
    Assessment,
    Course,
    CourseKind,
    Level,
    Major,
    Plan,
)
from contracts.base import CertificateKind

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def demo():
    return load_catalogue_dir(DEMO_DIR, DEMO_VERSION)


def test_demo_loads_without_errors(demo) -> None:
    assert demo.errors == []
    assert demo.importable
    catalogue = demo.catalogue
    assert catalogue.version == DEMO_VERSION
    assert len(catalogue.majors) == 13
    assert len(catalogue.points) >= 14
    assert catalogue.point("140105").name == "太原市小店区"
    assert catalogue.point("140106").name == "太原市迎泽区"
    assert set(demo.checksums) == set(FILES)
    # the only warnings are route courses no demo major has
    assert {w.code for w in demo.warnings} <= {"catalogue.route_course_unused"}


def test_demo_old_plan_law_major(demo) -> None:
    major = demo.catalogue.major("580401", Plan.OLD)
    assert major is not None
    assert major.label == "580401 法律事务(专科)(旧)"
    assert major.course("00242").name == "民法学"
    assert major.course("00223").credits is None  # unknown, not zero
    assert demo.catalogue.major("580401", Plan.NEW) is None


def test_demo_00019_is_practical_and_no_route_exempts_it(demo) -> None:
    course = demo.catalogue.major("530605", Plan.NEW).course("00019")
    assert course.name == "计算机应用基础（实践）"
    assert course.practical and not course.exemptible
    for route_id in ("NCRE1", "NCRE2", "NIT-BASICS+1"):
        route = demo.catalogue.route(route_id)
        assert "00019" not in {rc.course_code for rc in route.courses}, route_id
        assert route.course_codes_for(demo.catalogue.major("530605", Plan.NEW)) == ("00018",)


def test_demo_thesis_and_suspension(demo) -> None:
    thesis = demo.catalogue.major("030101", Plan.NEW).course("14850")
    assert thesis.kind is CourseKind.THESIS and thesis.thesis and not thesis.exemptible
    assert demo.catalogue.major("530302", Plan.NEW).suspended
    assert all(
        c.assessment is Assessment.EXAMINATION
        for m in demo.catalogue.majors.values()
        for c in m.courses
    )


def test_demo_has_routes_for_every_certificate_kind(demo) -> None:
    for kind in CertificateKind:
        assert demo.catalogue.routes_of_kind(kind.value), kind
    degree = demo.catalogue.route("DEGREE")
    assert degree.is_degree_route and degree.courses == ()
    for route_id in ("CET4", "CET4-425", "CET6", "PETS2", "PETS3", "NCRE1", "NCRE2", "NCRE2-C"):
        assert demo.catalogue.route(route_id) is not None
    assert demo.catalogue.route("NIT-MIS") is not None
    assert demo.catalogue.route("NIT-BASICS+1") is not None
    assert demo.catalogue.route("CET4-425").min_score == 425
    assert demo.catalogue.route("NCRE2-C").subject == "C语言程序设计"


def test_cet4_exempts_english_one_and_for_bachelor_english_two(demo) -> None:
    route = demo.catalogue.route("CET4")
    english = demo.catalogue.major("530605", Plan.NEW).courses[:1]  # any course list to extend
    e1 = Course("00012", "英语（一）", 7, CourseKind.PUBLIC)
    e2 = Course("00015", "英语（二）", 14, CourseKind.PUBLIC)
    junior = Major("999001", "测试专科", Level.JUNIOR_COLLEGE, Plan.OLD, courses=(*english, e1, e2))
    bachelor = Major("999002", "测试本科", Level.BACHELOR, Plan.OLD, courses=(e1, e2))
    assert route.course_codes_for(junior) == ("00012",)
    assert route.course_codes_for(bachelor) == ("00012", "00015")
    # the new-plan English assumption route works on the demo majors themselves
    new = demo.catalogue.route("CET4-NEW")
    assert new.course_codes_for(demo.catalogue.major("530605", Plan.NEW)) == ("13124",)
    assert new.course_codes_for(demo.catalogue.major("030101", Plan.NEW)) == ("13000",)


def test_ncre2_and_nit_mis_exclude_computing_majors(demo) -> None:
    cs = demo.catalogue.major("080901", Plan.NEW)
    assert cs.family == "computing"
    assert "computing" in demo.catalogue.route("NCRE2").excluded_families
    assert demo.catalogue.route("NCRE2").course_codes_for(cs) == ()
    assert demo.catalogue.route("NIT-MIS").course_codes_for(cs) == ()
    marketing = demo.catalogue.major("530605", Plan.NEW)
    assert demo.catalogue.route("NCRE2").course_codes_for(marketing) == ("00018",)


# --- broken files -------------------------------------------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "cat"
    shutil.copytree(DEMO_DIR, target)
    return target


def _append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(text)


def _codes(load) -> set[tuple[str, int, str]]:
    return {(i.file, i.line, i.code) for i in load.errors}


def _line_count(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_bad_major_rows(copy: Path) -> None:
    majors = copy / "majors.csv"
    n = _line_count(majors)
    _append(
        majors,
        "12345,坏代码,专科,新,N,,\n"
        "999999,未知层次,硕士,新,N,,\n"
        "999998,未知计划,本科,中,N,,\n"
        "580401,重复,专科,旧,N,law,\n"
        "999997,坏停考,本科,新,X,,\n"
        "999996,列数不对,本科\n",
    )
    load = load_catalogue_dir(copy, "v1")
    assert not load.importable
    assert _codes(load) >= {
        ("majors.csv", n + 1, "catalogue.bad_code"),
        ("majors.csv", n + 2, "catalogue.unknown_level"),
        ("majors.csv", n + 3, "catalogue.unknown_plan"),
        ("majors.csv", n + 4, "catalogue.duplicate_major"),
        ("majors.csv", n + 5, "catalogue.bad_flag"),
        ("majors.csv", n + 6, "catalogue.field_count"),
    }
    issue = next(i for i in load.errors if i.code == "catalogue.unknown_level")
    assert issue.column == "level" and "硕士" in issue.message_zh and issue.detail_en


def test_bad_course_rows(copy: Path) -> None:
    courses = copy / "courses.csv"
    n = _line_count(courses)
    _append(
        courses,
        "123456,新,00001,未知专业,3,专业核心,考试,N\n"
        "580401,旧,00242,民法学,7,专业核心,考试,N\n"
        "580401,旧,00999,学分非数字,三,专业核心,考试,N\n"
        "580401,旧,00998,类型未知,3,必修,考试,N\n"
        "580401,旧,00997,考核未知,3,专业核心,口试,N\n"
        "580401,旧,0099,代码太短,3,专业核心,考试,N\n"
        "580401,新,00996,计划不存在,3,专业核心,考试,N\n"
        "580401,旧,00995,实践未标,2,实践,考试,N\n",
    )
    load = load_catalogue_dir(copy, "v1")
    assert not load.importable
    assert _codes(load) >= {
        ("courses.csv", n + 1, "catalogue.unknown_major"),
        ("courses.csv", n + 2, "catalogue.duplicate_course"),
        ("courses.csv", n + 3, "catalogue.bad_number"),
        ("courses.csv", n + 4, "catalogue.unknown_kind"),
        ("courses.csv", n + 5, "catalogue.unknown_assessment"),
        ("courses.csv", n + 6, "catalogue.bad_code"),
        ("courses.csv", n + 7, "catalogue.unknown_major"),
        ("courses.csv", n + 8, "catalogue.practical_mismatch"),
    }


def test_assessment_course_is_not_exemptible(copy: Path) -> None:
    _append(copy / "courses.csv", "580401,旧,00990,考查课程,2,选修,考查,N\n")
    load = load_catalogue_dir(copy, "v1")
    assert load.importable
    course = load.catalogue.major("580401", Plan.OLD).course("00990")
    assert course.assessment is Assessment.ASSESSMENT and not course.exemptible


def test_bad_route_rows(copy: Path) -> None:
    routes = copy / "routes.csv"
    n = _line_count(routes)
    _append(
        routes,
        "X1,toefl,托福,,,,,,00012,,,\n"
        "X2,cet4_or_above,坏考试,gre,,,,,00012,,,\n"
        "X3,pets2_or_above,坏等级,pets,二,,,,00012,,,\n"
        "X4,pets2_or_above,坏层次,pets,2,,,,00012,硕士,,\n"
        "CET4,cet4_or_above,名称不同,cet4,,,,,00999,,,\n"
        "X5,pets2_or_above,重复课程,pets,2,,,,00012,,,\n"
        "X5,pets2_or_above,重复课程,pets,2,,,,00012,,,\n"
        "DEGREE2,degree,学历带课程,,,,,,00012,,,\n"
        "X6,pets2_or_above,无课程,pets,2,,,,,,,\n"
        "X7,ncre1_or_above,未开设课程,ncre,1,,,,00777,,,\n"
        "bad id!,ncre1_or_above,坏编号,ncre,1,,,,00018,,,\n",
    )
    load = load_catalogue_dir(copy, "v1")
    assert not load.importable
    assert _codes(load) >= {
        ("routes.csv", n + 1, "catalogue.unknown_route_kind"),
        ("routes.csv", n + 2, "catalogue.unknown_exam"),
        ("routes.csv", n + 3, "catalogue.bad_number"),
        ("routes.csv", n + 4, "catalogue.unknown_level"),
        ("routes.csv", n + 5, "catalogue.route_conflict"),
        ("routes.csv", n + 7, "catalogue.duplicate_route_course"),
        ("routes.csv", n + 8, "catalogue.degree_route_courses"),
        ("routes.csv", n + 9, "catalogue.route_without_courses"),
        ("routes.csv", n + 11, "catalogue.bad_code"),
    }
    unused = [w for w in load.warnings if w.line == n + 10]
    assert [w.code for w in unused] == ["catalogue.route_course_unused"]


def test_a_route_naming_a_practical_thesis_or_assessed_course_is_refused(copy: Path) -> None:
    _append(copy / "courses.csv", "580401,旧,00990,考查课程,2,选修,考查,N\n")
    routes = copy / "routes.csv"
    n = _line_count(routes)
    _append(
        routes,
        "NCRE1,ncre1_or_above,全国计算机等级考试一级及以上,ncre,1,,,,00019,,"
        "一级（含一级B）及以上证书；00019为实践课，按领域规则不予免考,S1\n"
        "X8,pets2_or_above,毕业论文,pets,2,,,,14850,,,\n"
        "X9,pets2_or_above,考查课程,pets,2,,,,00990,,,\n",
    )
    load = load_catalogue_dir(copy, "v1")
    assert not load.importable
    assert _codes(load) >= {
        ("routes.csv", n + 1, "catalogue.route_course_not_exemptible"),
        ("routes.csv", n + 2, "catalogue.route_course_not_exemptible"),
        ("routes.csv", n + 3, "catalogue.route_course_not_exemptible"),
    }
    issue = next(i for i in load.errors if i.line == n + 1)
    assert issue.column == "course_code" and "00019" in issue.message_zh
    assert "实践环节" in issue.message_zh


def test_bad_points_and_degree_rules(copy: Path) -> None:
    _append(copy / "points.csv", "14010,太短\n140105,重复\n")
    n = _line_count(copy / "points.csv")
    (copy / "degree_rules.csv").write_text(
        "key,value\nmin_score,六十\nmax_share_for_non_zikao,1.5\ncolour,blue\n", encoding="utf-8"
    )
    load = load_catalogue_dir(copy, "v1")
    assert _codes(load) >= {
        ("points.csv", n - 1, "catalogue.bad_code"),
        ("points.csv", n, "catalogue.duplicate_point"),
        ("degree_rules.csv", 2, "catalogue.bad_number"),
        ("degree_rules.csv", 3, "catalogue.bad_number"),
        ("degree_rules.csv", 4, "catalogue.unknown_key"),
    }


def test_bom_is_accepted_and_gbk_is_reported(copy: Path) -> None:
    majors = copy / "majors.csv"
    majors.write_bytes(b"\xef\xbb\xbf" + majors.read_bytes())
    load = load_catalogue_dir(copy, "v1")
    assert load.importable
    assert load.encodings["majors.csv"] == "utf-8-sig"
    points = copy / "points.csv"
    points.write_bytes(points.read_text(encoding="utf-8").encode("gbk"))
    load = load_catalogue_dir(copy, "v1")
    assert not load.importable
    issue = next(i for i in load.errors if i.file == "points.csv")
    assert issue.code == "catalogue.not_utf8" and "UTF-8" in issue.message_zh
    assert load.catalogue.point("140105").name == "太原市小店区"  # still read, for the report


def test_empty_missing_and_headerless_files(copy: Path) -> None:
    (copy / "points.csv").write_text("", encoding="utf-8")
    (copy / "majors.csv").write_text("code,name\n", encoding="utf-8")
    (copy / "routes.csv").unlink()
    (copy / "degree_rules.csv").write_text("key,value\n", encoding="utf-8")
    load = load_catalogue_dir(copy, "v1")
    assert not load.importable
    assert _codes(load) >= {
        ("points.csv", 0, "catalogue.empty_file"),
        ("majors.csv", 1, "catalogue.missing_columns"),
        ("routes.csv", 0, "catalogue.missing_file"),
        ("degree_rules.csv", 0, "catalogue.no_rows"),
    }


def test_bad_version_and_malformed_csv(copy: Path) -> None:
    _append(copy / "points.csv", '140199,"未闭合引号\n')
    load = load_catalogue_dir(copy, "bad version!")
    codes = {i.code for i in load.errors}
    assert {"catalogue.bad_version", "catalogue.bad_csv"} <= codes


def test_issue_describe_is_bilingual(copy: Path) -> None:
    _append(copy / "majors.csv", "999999,未知层次,硕士,新,N,,\n")
    issue = load_catalogue_dir(copy, "v1").errors[0]
    text = issue.describe()
    assert "majors.csv" in text and "第" in text and "[level]" in text and " / " in text


_JUNK = st.text(
    alphabet=st.sampled_from(list(',"\n\r;\x00 YN旧新专科本科0123456789abc\ufeff')), max_size=300
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    name=st.sampled_from(FILES),
    junk=_JUNK,
    raw=st.binary(max_size=200),
    use_raw=st.booleans(),
    keep_header=st.booleans(),
)
def test_random_junk_never_raises(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    junk: str,
    raw: bytes,
    use_raw: bool,
    keep_header: bool,
) -> None:
    target = tmp_path_factory.mktemp("junk")
    for file in FILES:
        shutil.copy(DEMO_DIR / file, target / file)
    header = (DEMO_DIR / name).read_text(encoding="utf-8").splitlines()[0] + "\n"
    data = raw if use_raw else junk.encode("utf-8")
    (target / name).write_bytes((header.encode() if keep_header else b"") + data)
    load = load_catalogue_dir(target, "v1")
    assert all(i.file in (*FILES, "-") for i in load.issues)
    if load.importable:
        assert load.catalogue.majors
