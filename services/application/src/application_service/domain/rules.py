"""The exemption rules as pure functions: each raises its error or returns what is allowed.

They take plain values (the catalogue, the evidence, the candidate) and never read a clock:
the moment of judgement is a parameter. The aggregate composes them; the tests drive them
table by table.
"""

from __future__ import annotations

import math
import unicodedata
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime

from application_service.domain import errors
from application_service.domain.catalogue import (
    Catalogue,
    Course,
    DegreeRules,
    Level,
    Major,
    Plan,
    Route,
    normalise_course_name,
)
from application_service.domain.evidence import (
    CandidateFacts,
    CertificateCheckFacts,
    Evidence,
    TranscriptLine,
    VerifiedDegreeFacts,
)
from eventkit.text import is_blank

# 层次 order: master/doctor ≥ bachelor ≥ junior_college.
LEVEL_RANK: dict[str, int] = {"junior_college": 1, "bachelor": 2, "master": 3, "doctor": 3}
# Evidence a route's exam accepts: a CET-6 check also proves CET-4.
ACCEPTED_EXAMS: dict[str, frozenset[str]] = {"cet4": frozenset({"cet4", "cet6"})}
GRADUATED = "毕业"
ASSESSED = "assessment"


def normalise_text(value: str) -> str:
    """Comparable form of a subject or module: NFKC, no whitespace, case-folded."""
    return "".join(unicodedata.normalize("NFKC", value).split()).casefold()


# --- candidate, majors --------------------------------------------------------------------------


def check_candidate(candidate: CandidateFacts) -> None:
    """Only enrolled (在籍) and registered candidates may apply."""
    if not candidate.enrolled:
        raise errors.CandidateNotEnrolled(f"candidate {candidate.candidate_id} is not enrolled")
    if not candidate.registered:
        raise errors.CandidateNotRegistered(f"candidate {candidate.candidate_id} not registered")


def check_point(catalogue: Catalogue, point_id: str) -> None:
    """The confirmation point exists in the catalogue."""
    if catalogue.point(point_id) is None:
        raise errors.PointNotFound(f"confirmation point {point_id!r} not in the catalogue")


def check_major(catalogue: Catalogue, plan: Plan, major_code: str) -> Major:
    """A major of the plan that is still examined."""
    major = catalogue.major(major_code, plan)
    if major is None:
        raise errors.MajorNotFound(f"major {major_code!r} not in plan {plan.value}")
    if major.suspended:
        raise errors.MajorSuspended(f"major {major_code} is suspended (停考)")
    return major


def check_majors(catalogue: Catalogue, plan: Plan, major_codes: Sequence[str]) -> list[Major]:
    """One or two distinct majors of the plan, none suspended."""
    if not major_codes:
        raise errors.NoMajors("no major chosen")
    if len(set(major_codes)) != len(major_codes):
        raise errors.DuplicateMajor(f"duplicate major in {list(major_codes)}")
    if len(major_codes) > 2:
        raise errors.TooManyMajors(f"{len(major_codes)} majors chosen, at most 2")
    return [check_major(catalogue, plan, code) for code in major_codes]


# --- routes and certificate checks ------------------------------------------------------------


def check_route(catalogue: Catalogue, route_id: str, kind: str) -> Route:
    """The route exists and belongs to the certificate's kind."""
    route = catalogue.route(route_id)
    if route is None:
        raise errors.RouteNotFound(f"route {route_id!r} not in the rule table")
    if route.kind != kind:
        raise errors.RouteKindMismatch(f"route {route_id} is for {route.kind}, not {kind}")
    return route


# Check outcomes that mean "cannot be verified online", not "verified false": such a certificate
# still goes to a reviewer with its photo (issue 5). A holder mismatch or a level below the
# route's is refused outright.
UNVERIFIABLE = frozenset({"not_found"})


def check_certificate_evidence(
    route: Route, check_ref: uuid.UUID | None, candidate: CandidateFacts, evidence: Evidence
) -> CertificateCheckFacts:
    """A non-degree route's conditions against the candidate's certificate check.

    The check must be this candidate's, from the route's exam (a CET-4 route also accepts a
    CET-6 check), verified with level ≥ min_level, score ≥ min_score and the subject equal
    (normalised) where the route requires them — or unverifiable online (not found), in which
    case the reviewers judge the original.
    """
    if check_ref is None:
        raise errors.EvidenceMissing(f"route {route.route_id} needs a certificate check")
    check = evidence.checks.get(check_ref)
    if check is None:
        raise errors.CheckNotFound(f"certificate check {check_ref} unknown")
    if check.candidate_id != candidate.candidate_id:
        raise errors.CheckNotOwned(f"check {check_ref} belongs to another candidate")
    if route.exam is not None:
        accepted = ACCEPTED_EXAMS.get(route.exam, frozenset({route.exam}))
        if check.exam not in accepted:
            raise errors.CheckWrongExam(f"route {route.route_id} needs {route.exam}: {check.exam}")
    if not check.verified:
        if check.reason_code in UNVERIFIABLE:
            # The authority's online query does not know it (older certificates, score reports):
            # it goes to the reviewers with its photo, who judge it from the original.
            return check
        raise errors.CheckNotVerified(f"check {check_ref} failed: {check.reason_code}")
    if route.min_level is not None and (check.level is None or check.level < route.min_level):
        raise errors.CheckLevelTooLow(f"level {check.level} < {route.min_level}")
    if route.min_score is not None and (check.score is None or check.score < route.min_score):
        raise errors.CheckScoreTooLow(f"score {check.score} < {route.min_score}")
    if route.subject is not None and (
        check.subject is None or normalise_text(check.subject) != normalise_text(route.subject)
    ):
        raise errors.CheckSubjectMismatch(f"subject {check.subject!r} is not {route.subject!r}")
    return check


def check_family(route: Route, major: Major) -> None:
    """The route does not exclude the major's family (e.g. NCRE-2 for computing majors)."""
    if major.family is not None and major.family in route.excluded_families:
        raise errors.MajorFamilyExcluded(f"route {route.route_id} excludes family {major.family}")


# --- courses ------------------------------------------------------------------------------------


def check_course(major: Major, course_code: str, candidate: CandidateFacts) -> Course:
    """A course of the major that may be exempted at all, and not passed or exempted yet.

    Practical components, theses and 考查 courses are refused whatever the route (a rule table
    naming one does not make it exemptible): application.course_not_exemptible.
    """
    course = major.course(course_code)
    if course is None:
        raise errors.CourseNotInMajor(f"course {course_code} not in major {major.code}")
    if major.suspended:
        raise errors.MajorSuspended(f"major {major.code} is suspended (停考)")
    if not course.exemptible:
        raise errors.CourseNotExemptible(f"course {course_code} is not exemptible")
    if course_code in candidate.passed_courses:
        raise errors.CourseAlreadyPassed(f"course {course_code} already passed")
    if course_code in candidate.exempted_courses:
        raise errors.CourseAlreadyExempted(f"course {course_code} already exempted")
    return course


def check_route_course(
    route: Route, major: Major, course_code: str, candidate: CandidateFacts
) -> Course:
    """A course a non-degree route may exempt for the major (Route.course_codes_for)."""
    check_family(route, major)
    course = check_course(major, course_code, candidate)
    if course_code not in route.course_codes_for(major):
        raise errors.CourseNotCoveredByRoute(
            f"route {route.route_id} does not exempt {course_code} for {major.code}"
        )
    return course


def allowed_courses(route: Route, major: Major, candidate: CandidateFacts) -> tuple[str, ...]:
    """The courses of `major` the candidate may claim with a certificate of `route`.

    For a degree route every exemptible course of the major qualifies here (the transcript then
    decides); for other routes the rule table's courses for the major's level.
    """
    if major.suspended:
        return ()
    if route.is_degree_route:
        codes: Iterable[str] = (c.code for c in major.courses if c.exemptible)
    else:
        codes = route.course_codes_for(major)
    done = candidate.passed_courses | candidate.exempted_courses
    return tuple(code for code in codes if code not in done)


# --- the degree route ---------------------------------------------------------------------------


def check_degree(
    degree_ref: uuid.UUID | None, candidate: CandidateFacts, evidence: Evidence, now: datetime
) -> VerifiedDegreeFacts:
    """A CHSI-verified degree of this candidate (本人学历), still valid, concluded 毕业."""
    if degree_ref is None:
        raise errors.EvidenceMissing("a degree certificate needs a CHSI-verified degree")
    degree = evidence.degrees.get(degree_ref)
    if degree is None:
        raise errors.DegreeNotFound(f"verified degree {degree_ref} unknown")
    if degree.candidate_id != candidate.candidate_id or not degree.holder_matches_candidate:
        raise errors.DegreeNotOwned(f"degree {degree_ref} is not the candidate's")
    if degree.valid_until is not None and now.date() > degree.valid_until:
        raise errors.DegreeVerificationExpired(
            f"degree {degree_ref} was valid until {degree.valid_until}"
        )
    if degree.conclusion.strip() != GRADUATED:
        raise errors.DegreeNotGraduated(f"degree {degree_ref} concluded {degree.conclusion!r}")
    if degree.level not in LEVEL_RANK:
        raise errors.InvalidInput(f"degree level {degree.level!r} unknown")
    return degree


def find_transcript_line(degree: VerifiedDegreeFacts, source_course_name: str) -> TranscriptLine:
    """The transcript line the candidate ticked, by normalised name."""
    wanted = normalise_course_name(source_course_name)
    for line in degree.transcript:
        if normalise_course_name(line.name) == wanted:
            return line
    raise errors.TranscriptCourseNotFound(f"{source_course_name!r} not on the transcript")


def numeric_score(score: str | None) -> float:
    """A 100-point score; a grade (良好, 合格…), a blank or a score above 100 is refused."""
    text = unicodedata.normalize("NFKC", score or "").strip()
    try:
        value = float(text)
    except ValueError:
        raise errors.TranscriptScoreNotNumeric(f"score {score!r} is not numeric") from None
    if not math.isfinite(value) or value < 0 or value > 100:
        raise errors.TranscriptScoreNotNumeric(f"score {score!r} is not on a 100-point scale")
    return value


def line_credits(line: TranscriptLine, rules: DegreeRules) -> float | None:
    """The transcript line's credits, or its hours / hours_per_credit when credits are missing."""
    if line.credits is not None:
        return line.credits
    if line.hours is not None:
        return line.hours / rules.hours_per_credit
    return None


def check_degree_course(
    degree: VerifiedDegreeFacts,
    source_course_name: str | None,
    course: Course,
    major: Major,
    rules: DegreeRules,
) -> TranscriptLine:
    """The transcript course ticked for `course` qualifies for it.

    Passed by examination on a 100-point scale (score ≥ rules.min_score), the same name after
    `normalise_course_name`, credits (or hours/18) ≥ the course's; the degree's level at least
    the major's, except that a 专科 degree may serve a 本科 major when the transcript course has
    the identical code and credits.
    """
    degree_rank, major_rank = LEVEL_RANK[degree.level], LEVEL_RANK[major.level.value]
    junior_for_bachelor = degree_rank < major_rank
    if junior_for_bachelor and not (
        degree.level == Level.JUNIOR_COLLEGE.value and major.level is Level.BACHELOR
    ):
        raise errors.DegreeLevelTooLow(f"{degree.level} degree for a {major.level} major")
    if source_course_name is None or is_blank(source_course_name):
        raise errors.SourceCourseRequired(f"no transcript course named for {course.code}")
    line = find_transcript_line(degree, source_course_name)
    if normalise_course_name(line.name) != course.comparable_name:
        raise errors.TranscriptNameMismatch(f"{line.name!r} is not {course.name!r}")
    if line.assessment == ASSESSED:
        raise errors.TranscriptCourseNotExamined(f"{line.name!r} was assessed (考查)")
    if numeric_score(line.score) < rules.min_score:
        raise errors.TranscriptScoreTooLow(f"{line.name!r} scored {line.score} < {rules.min_score}")
    credits = line_credits(line, rules)
    if course.credits is not None and (credits is None or credits < course.credits):
        raise errors.TranscriptCreditsTooLow(f"{line.name!r}: {credits} < {course.credits}")
    if junior_for_bachelor and (
        line.code is None
        or line.code.strip() != course.code
        or course.credits is None
        or line.credits is None
        or line.credits != course.credits
    ):
        raise errors.JuniorCollegeMismatch(
            f"专科 {line.name!r} ({line.code}, {line.credits}) is not identical to "
            f"{course.code} ({course.credits})"
        )
    return line


def degree_share_limit(major: Major, rules: DegreeRules) -> int:
    """How many of the major's courses a non-自考 graduate may be exempted from by degree."""
    return math.floor(len(major.courses) * rules.max_share_for_non_zikao + 1e-9)


def check_degree_share(major: Major, claimed_by_non_zikao_degrees: int, rules: DegreeRules) -> None:
    """The prior-degree cap for graduates who are not 自考 graduates.

    What is counted: the number of distinct courses of `major` claimed in this application
    through degree certificates resting on a non-自考 degree (VerifiedDegreeFacts.is_zikao
    false), all such certificates together. It is compared with `max_share_for_non_zikao` times
    the number of all courses of the major in the catalogue (exemptible or not: practical
    components, theses and 考查 courses count in the total), rounded down; so 13 courses allow 6.
    Courses exempted by earlier applications are not counted (their route is not known here).
    """
    limit = degree_share_limit(major, rules)
    if claimed_by_non_zikao_degrees > limit:
        raise errors.DegreeShareExceeded(
            f"{claimed_by_non_zikao_degrees} degree courses for {major.code}, at most {limit}"
        )


# --- photos -------------------------------------------------------------------------------------


def check_photos(
    photo_ids: Sequence[uuid.UUID],
    candidate: CandidateFacts,
    evidence: Evidence,
    used_elsewhere: Iterable[uuid.UUID] = (),
) -> None:
    """At least one photo; each the candidate's, not deleted, and cited once in the application."""
    if not photo_ids:
        raise errors.PhotoRequired("a certificate needs at least one photo")
    used = set(used_elsewhere)
    if len(set(photo_ids)) != len(photo_ids):
        raise errors.PhotoReused("a photo is cited twice by one certificate")
    for photo_id in photo_ids:
        if photo_id in used:
            raise errors.PhotoReused(f"photo {photo_id} is cited by another certificate")
        photo = evidence.photos.get(photo_id)
        if photo is None:
            raise errors.PhotoNotFound(f"photo {photo_id} unknown")
        if photo.owner_id != candidate.candidate_id:
            raise errors.PhotoNotOwned(f"photo {photo_id} belongs to someone else")
        if photo.deleted:
            raise errors.PhotoDeleted(f"photo {photo_id} was deleted")
