"""The application aggregate's errors: one class per rule, each with a stable code.

Every error carries a Chinese `message` for the candidate, an English `detail_en` for logs and
the HTTP `status` an entrypoint answers with: 422 for a broken rule, 404 for something that is
not there, 409 for a conflict with the application's (or window's) state.
"""

from __future__ import annotations

from eventkit.errors import DomainError


class ApplicationError(DomainError):
    """Base of the application service's domain errors."""

    code = "application.error"
    status = 422
    default_message = "免考申请不符合规定"

    def __init__(self, detail_en: str = "", message: str | None = None) -> None:
        super().__init__(message or self.default_message, detail_en or self.default_message)


# --- input and state --------------------------------------------------------------------------


class InvalidInput(ApplicationError):
    """A command's input is malformed (a bad case number, an over-long reason…)."""

    code = "application.invalid_input"
    default_message = "提交的信息格式不正确"


class InvalidWindow(ApplicationError):
    """A window's deadlines are not in order (opens → apply → 点 → 省 → results)."""

    code = "application.window_invalid"
    default_message = "申请时段的各阶段截止时间顺序不正确"


class WindowClosed(ApplicationError):
    """The window does not accept applications now."""

    code = "application.window_closed"
    status = 409
    default_message = "当前不在免考申请时间内（未开放或已截止）"


class ResubmissionClosed(ApplicationError):
    """A returned application may be resubmitted only until the point-review deadline."""

    code = "application.resubmission_closed"
    status = 409
    default_message = "重新申请已截止（已过免考确认点审核截止时间）"


class WrongWindow(ApplicationError):
    """The window given is not the one the application belongs to."""

    code = "application.wrong_window"
    status = 409
    default_message = "申请时段与该申请不一致"


class CatalogueMismatch(ApplicationError):
    """The catalogue given is not the version the application was drafted against."""

    code = "application.catalogue_mismatch"
    status = 409
    default_message = "专业目录版本与该申请不一致，请刷新后重试"


class OpenApplicationExists(ApplicationError):
    """The candidate already has an open application in this window (service layer)."""

    code = "application.open_application_exists"
    status = 409
    default_message = "本次申请时段内您已有一份未完成的免考申请"


class NotEditable(ApplicationError):
    """Certificates are added or removed only while drafting or after a return."""

    code = "application.not_editable"
    status = 409
    default_message = "当前状态下不能修改申请（仅草稿或被退回的申请可修改）"


class AlreadySubmitted(ApplicationError):
    """The application was already submitted."""

    code = "application.already_submitted"
    status = 409
    default_message = "该申请已提交，请勿重复提交"


class NotReturned(ApplicationError):
    """Only a returned application can be resubmitted."""

    code = "application.not_returned"
    status = 409
    default_message = "只有被退回的申请才能重新申请"


class NotUnderReview(ApplicationError):
    """A decision needs a submitted application."""

    code = "application.not_under_review"
    status = 409
    default_message = "该申请未提交审核"


class AlreadyDecided(ApplicationError):
    """The application was decided; nothing more can change it."""

    code = "application.already_decided"
    status = 409
    default_message = "该申请已有审核结果，不能再修改或撤回"


class AlreadyWithdrawn(ApplicationError):
    """The application was withdrawn."""

    code = "application.already_withdrawn"
    status = 409
    default_message = "该申请已撤回"


# --- candidate, point, plan, majors -------------------------------------------------------------


class CandidateMismatch(ApplicationError):
    """The candidate facts are not those of the application's candidate."""

    code = "application.candidate_mismatch"
    status = 409
    default_message = "考生信息与该申请不一致"


class CandidateNotEnrolled(ApplicationError):
    """Only enrolled (在籍) candidates may apply."""

    code = "application.candidate_not_enrolled"
    default_message = "只有在籍考生才能申请免考"


class CandidateNotRegistered(ApplicationError):
    """Only registered candidates may apply."""

    code = "application.candidate_not_registered"
    default_message = "请先完成考生注册后再申请免考"


class PointNotFound(ApplicationError):
    """The confirmation point is not in the catalogue."""

    code = "application.point_not_found"
    status = 404
    default_message = "免考确认点不存在"


class NoMajors(ApplicationError):
    """At least one major is chosen."""

    code = "application.no_majors"
    default_message = "请至少选择一个专业"


class TooManyMajors(ApplicationError):
    """Courses come from at most two majors."""

    code = "application.too_many_majors"
    default_message = "免考课程最多来自两个不同专业"


class DuplicateMajor(ApplicationError):
    """A major is chosen twice."""

    code = "application.duplicate_major"
    default_message = "同一专业不能重复选择"


class MajorNotFound(ApplicationError):
    """The major is not in the chosen plan of the catalogue."""

    code = "application.major_not_found"
    status = 404
    default_message = "所选计划中不存在该专业"


class MajorSuspended(ApplicationError):
    """A suspended (停考) major is not applied under."""

    code = "application.major_suspended"
    default_message = "该专业已停考，不能申请免考"


class MajorNotInApplication(ApplicationError):
    """A course is claimed under a major the application was not drafted for."""

    code = "application.major_not_in_application"
    default_message = "课程所属专业不在本申请所选专业之内"


# --- certificates and courses -----------------------------------------------------------------


class TooManyCertificates(ApplicationError):
    """At most four certificates per application."""

    code = "application.too_many_certificates"
    default_message = "每份申请最多添加四个证书"


class DuplicateCertificate(ApplicationError):
    """The certificate id is already used in this application."""

    code = "application.duplicate_certificate"
    status = 409
    default_message = "该证书已添加"


class CertificateNotFound(ApplicationError):
    """No certificate of that id in the application."""

    code = "application.certificate_not_found"
    status = 404
    default_message = "申请中没有该证书"


class NoCertificates(ApplicationError):
    """A submission has at least one certificate."""

    code = "application.no_certificates"
    default_message = "请至少添加一个证书后再提交"


class DeclarationRequired(ApplicationError):
    """The declaration (承诺书) is ticked before submitting."""

    code = "application.declaration_required"
    default_message = "请阅读并勾选《免考申请承诺书》后再提交"


class NoCourses(ApplicationError):
    """A certificate exempts at least one course."""

    code = "application.no_courses"
    default_message = "请为该证书至少选择一门免考课程"


class CourseClaimedTwice(ApplicationError):
    """A course is claimed once per application."""

    code = "application.course_already_claimed"
    default_message = "同一课程在一份申请中只能申请一次"


class CourseNotInMajor(ApplicationError):
    """The course is not part of the major's plan."""

    code = "application.course_not_in_major"
    default_message = "该课程不属于所选专业"


class CourseNotExemptible(ApplicationError):
    """Practical components, theses and 考查 courses are never exempted."""

    code = "application.course_not_exemptible"
    default_message = "实践环节、毕业论文（设计）及考查课程不能免考"


class CourseAlreadyPassed(ApplicationError):
    """A course already passed is not claimed."""

    code = "application.course_already_passed"
    default_message = "该课程您已考试合格，无需免考"


class CourseAlreadyExempted(ApplicationError):
    """A course already exempted is not claimed again."""

    code = "application.course_already_exempted"
    default_message = "该课程已经免考，不能重复申请"


class CourseNotCoveredByRoute(ApplicationError):
    """The route of the rule table does not exempt this course for this major."""

    code = "application.course_not_covered"
    default_message = "该证书不能免考此课程"


# --- routes and certificate checks ----------------------------------------------------------


class RouteNotFound(ApplicationError):
    """The route is not in the catalogue's rule table."""

    code = "application.route_not_found"
    status = 404
    default_message = "免考规则不存在"


class RouteKindMismatch(ApplicationError):
    """The route belongs to another certificate type."""

    code = "application.route_kind_mismatch"
    default_message = "证书类型与免考规则不符"


class EvidenceMissing(ApplicationError):
    """A degree certificate cites a verified degree, any other a certificate check."""

    code = "application.evidence_missing"
    default_message = "请先完成证书核验（学历证书需先完成学信网学历验证）"


class CheckNotFound(ApplicationError):
    """No certificate check of that id."""

    code = "application.check_not_found"
    status = 404
    default_message = "未找到该证书的核验记录"


class CheckNotOwned(ApplicationError):
    """The certificate check is another candidate's."""

    code = "application.check_not_owned"
    default_message = "该证书核验记录不属于本人"


class CheckNotVerified(ApplicationError):
    """The certificate check failed (not found, holder mismatch…)."""

    code = "application.check_not_verified"
    default_message = "证书未通过核验，不能用于免考"


class CheckWrongExam(ApplicationError):
    """The check is of another examination than the route requires."""

    code = "application.check_wrong_exam"
    default_message = "证书所属考试与免考规则要求不符"


class CheckLevelTooLow(ApplicationError):
    """The certificate's level is below the route's minimum."""

    code = "application.check_level_too_low"
    default_message = "证书级别未达到免考要求"


class CheckScoreTooLow(ApplicationError):
    """The certificate's score is below the route's minimum (or missing)."""

    code = "application.check_score_too_low"
    default_message = "证书成绩未达到免考要求"


class CheckSubjectMismatch(ApplicationError):
    """The certificate's subject or module is not the one the route requires."""

    code = "application.check_subject_mismatch"
    default_message = "证书科目（模块）与免考要求不符"


class MajorFamilyExcluded(ApplicationError):
    """The route excludes this family of majors (e.g. NCRE-2 for computing majors)."""

    code = "application.major_family_excluded"
    default_message = "该证书不适用于所报专业"


# --- the degree route ---------------------------------------------------------------------------


class DegreeNotFound(ApplicationError):
    """No verified degree of that id."""

    code = "application.degree_not_found"
    status = 404
    default_message = "未找到该学历的学信网验证记录"


class DegreeNotOwned(ApplicationError):
    """The verified degree is not the candidate's (另一考生的验证, or name/ID mismatch)."""

    code = "application.degree_not_owned"
    default_message = "该学历不是本人学历（姓名或身份证号不一致）"


class DegreeVerificationExpired(ApplicationError):
    """The CHSI verification may no longer be relied on."""

    code = "application.degree_verification_expired"
    default_message = "学信网学历验证已过期，请重新验证"


class DegreeNotGraduated(ApplicationError):
    """Only a degree concluded 毕业 may be used."""

    code = "application.degree_not_graduated"
    default_message = "只有毕业的学历才能申请免考（结业、肄业不可）"


class DegreeLevelTooLow(ApplicationError):
    """The degree's level is below the major's."""

    code = "application.degree_level_too_low"
    default_message = "学历层次低于所报专业层次"


class SourceCourseRequired(ApplicationError):
    """A degree claim names the transcript course it rests on; others name none."""

    code = "application.source_course_required"
    default_message = "请在成绩单中勾选用于免考的课程"


class TranscriptCourseNotFound(ApplicationError):
    """The named course is not on the degree's transcript."""

    code = "application.transcript_course_not_found"
    default_message = "成绩单中没有该课程"


class TranscriptCourseNotExamined(ApplicationError):
    """The transcript course was assessed (考查), not examined."""

    code = "application.transcript_course_not_examined"
    default_message = "成绩单中该课程为考查课程，不能用于免考"


class TranscriptScoreNotNumeric(ApplicationError):
    """The score is a grade (良好, 合格…), not a 100-point score."""

    code = "application.transcript_score_not_numeric"
    default_message = "该课程成绩不是百分制成绩，不能用于免考"


class TranscriptScoreTooLow(ApplicationError):
    """The transcript course was not passed."""

    code = "application.transcript_score_too_low"
    default_message = "该课程成绩未达到合格分数"


class TranscriptNameMismatch(ApplicationError):
    """The transcript course's name differs from the target course's (brackets included)."""

    code = "application.transcript_name_mismatch"
    default_message = "成绩单课程名称与免考课程名称不一致"


class TranscriptCreditsTooLow(ApplicationError):
    """The transcript course's credits (or hours/18) are below the target's, or unknown."""

    code = "application.transcript_credits_too_low"
    default_message = "成绩单课程学分（学时）低于免考课程学分"


class JuniorCollegeMismatch(ApplicationError):
    """A 专科 course used for a 本科 major needs identical name, code and credits."""

    code = "application.junior_college_mismatch"
    default_message = "专科课程用于本科专业免考时，课程名称、代码和学分须完全相同"


class DegreeShareExceeded(ApplicationError):
    """A non-自考 graduate is exempted by degree from at most half of a major's courses."""

    code = "application.degree_share_exceeded"
    default_message = "非自考毕业生以学历免考的课程不得超过该专业课程总数的一半"


# --- photos -------------------------------------------------------------------------------------


class PhotoRequired(ApplicationError):
    """Every certificate has at least one photo."""

    code = "application.photo_required"
    default_message = "请上传证书照片"


class PhotoNotFound(ApplicationError):
    """No photo of that id."""

    code = "application.photo_not_found"
    status = 404
    default_message = "证书照片不存在"


class PhotoNotOwned(ApplicationError):
    """The photo is another person's."""

    code = "application.photo_not_owned"
    default_message = "证书照片不属于本人"


class PhotoDeleted(ApplicationError):
    """The photo was deleted."""

    code = "application.photo_deleted"
    default_message = "证书照片已删除，请重新上传"


class PhotoReused(ApplicationError):
    """A photo belongs to one certificate, once."""

    code = "application.photo_reused"
    default_message = "同一照片不能重复使用"


# --- review policies ----------------------------------------------------------------------------


class DecisionsMismatch(ApplicationError):
    """A decision has exactly one entry per claimed course."""

    code = "application.decisions_mismatch"
    default_message = "审核结果与申请的免考课程不一致"


ALL_ERRORS: tuple[type[ApplicationError], ...] = tuple(
    cls
    for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, ApplicationError) and cls is not ApplicationError
)
