"""Domain rules: verification codes, levels, certificate numbers, holder matching, errors."""

from __future__ import annotations

from datetime import UTC, date, datetime
from uuid import uuid4

import pytest

from contracts.credential import AssessmentMethod, DegreeLevel
from credential_verify_service.domain import errors
from credential_verify_service.domain.codes import (
    normalise_verification_code,
    parse_verification_code,
)
from credential_verify_service.domain.records import (
    QualificationRecord,
    TranscriptEntry,
    certificate_number_problem,
    certificate_year,
    degree_level,
    ensure_holder,
    holder_matches,
    holder_mismatches,
    normalise_id_number,
    parse_certificate_number,
)
from eventkit.errors import DomainError

pytestmark = pytest.mark.unit


def record(**overrides: object) -> QualificationRecord:
    fields: dict[str, object] = {
        "record_id": "chsi-rec-0001",
        "name": "张三",
        "gender": "男",
        "id_number": "14010519900101123X",
        "birth_date": date(1990, 1, 1),
        "institution": "山西大学",
        "level": "本科",
        "major": "法学",
        "duration_years": 4,
        "category": "普通高等教育",
        "study_form": "普通全日制",
        "entry_date": date(2008, 9, 1),
        "graduation_date": date(2012, 7, 1),
        "conclusion": "毕业",
        "certificate_number": "101082012050001234",
        "transcript": (
            TranscriptEntry("民法学", "00242", 4.0, 72, "85", "考试"),
            TranscriptEntry("体育", None, 1.0, None, "合格", "考查"),
            TranscriptEntry("大学语文"),
        ),
    }
    fields.update(overrides)
    return QualificationRecord(**fields)  # type: ignore[arg-type]


# --- verification codes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A1B2C3D4E5F6G7H8", "A1B2C3D4E5F6G7H8"),
        ("a1b2-c3d4-e5f6-g7h8", "A1B2C3D4E5F6G7H8"),
        ("  A1B2 C3D4 E5F6 G7H8 ", "A1B2C3D4E5F6G7H8"),
        ("Ａ１Ｂ２Ｃ３Ｄ４Ｅ５Ｆ６Ｇ７Ｈ８", "A1B2C3D4E5F6G7H8"),
        ("1234567890123456", "1234567890123456"),
        ("123456789012", "123456789012"),
        ("1234-5678-9012", "123456789012"),
        ("1234\u20145678\u20149012", "123456789012"),
    ],
)
def test_good_codes_are_normalised(text: str, expected: str) -> None:
    code = parse_verification_code(text)
    assert code.value == expected
    assert str(code) == expected
    assert code.is_legacy == (len(expected) == 12)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "A1B2C3D4E5F6G7H",  # 15
        "A1B2C3D4E5F6G7H8J",  # 17
        "A1B2C3D4E5F6",  # 12 but not all digits
        "12345678901",  # 11 digits
        "1234567890123",  # 13 digits
        "A1B2C3D4E5F6G7H!",
        "A1B2C3D4E5F6G7H_",
        "学信网验证码学信网验证码学信网验证",
        "A1B2C3D4E5F6G7Hé",
        "123456789012\n",  # newline is whitespace, stripped → valid? no: see below
    ][:-1],
)
def test_malformed_codes_are_refused(text: str) -> None:
    with pytest.raises(errors.VerificationCodeMalformed) as caught:
        parse_verification_code(text)
    assert caught.value.code == "credential.verification_code_malformed"
    assert caught.value.status == 422


def test_trailing_newline_is_whitespace_and_stripped() -> None:
    assert parse_verification_code("123456789012\n").value == "123456789012"
    assert normalise_verification_code(" ab-cd ") == "ABCD"


# --- levels --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("专科", DegreeLevel.JUNIOR_COLLEGE),
        ("本科", DegreeLevel.BACHELOR),
        ("第二学士学位", DegreeLevel.BACHELOR),
        ("硕士研究生", DegreeLevel.MASTER),
        ("博士研究生", DegreeLevel.DOCTOR),
        (" 本科 ", DegreeLevel.BACHELOR),
    ],
)
def test_level_mapping(text: str, level: DegreeLevel) -> None:
    assert degree_level(text) is level


@pytest.mark.parametrize("text", ["", "高中", "本科生", "bachelor"])
def test_unknown_level_is_unrecognised(text: str) -> None:
    with pytest.raises(errors.RecordUnrecognised):
        degree_level(text)


def test_record_level_property() -> None:
    assert record(level="专科").degree_level is DegreeLevel.JUNIOR_COLLEGE


# --- certificate numbers -------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["101082012050001234", "100011950010000001"])
def test_plausible_certificate_numbers(number: str) -> None:
    assert certificate_number_problem(number) is None
    assert parse_certificate_number(number) == number


@pytest.mark.parametrize(
    "number",
    [
        "",
        "10108201205000123",  # 17
        "1010820120500012345",  # 19
        "10108201205000123X",
        "１０１０８２０１２０５０００１２３４x",
        "101081949050001234",  # year 1949
        "101082101050001234",  # year 2101
    ],
)
def test_implausible_certificate_numbers(number: str) -> None:
    assert certificate_number_problem(number) is not None
    with pytest.raises(errors.CertificateNumberMalformed):
        parse_certificate_number(number)


def test_certificate_number_normalisation_and_latest_year() -> None:
    assert parse_certificate_number(" １０１０８ 2012050001234") == "101082012050001234"
    assert certificate_number_problem("101082030050001234", latest_year=2026) is not None
    assert certificate_year("101082012050001234") == 2012
    with pytest.raises(errors.CertificateNumberMalformed):
        certificate_year("12")


# --- holder matching -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "id_number"),
    [
        ("张三", "14010519900101123X"),
        (" 张三 ", "14010519900101123x"),
        ("张 三", "１４０１０５１９９００１０１１２３Ｘ"),
        ("张三", "１４０１０５１９９００１０１１２３ｘ"),
    ],
)
def test_holder_matches_after_normalisation(name: str, id_number: str) -> None:
    assert holder_matches(record(), name, id_number)
    ensure_holder(record(), name, id_number)


def test_lower_case_x_on_the_record_side() -> None:
    assert holder_matches(record(id_number="14010519900101123x"), "张三", "14010519900101123X")


def test_minority_names_with_any_middle_dot() -> None:
    rec = record(name="买买提·艾力")
    assert holder_matches(rec, "买买提•艾力", "14010519900101123X")
    assert holder_matches(rec, "买买提・艾力", "14010519900101123X")


@pytest.mark.parametrize(
    ("name", "id_number", "fields"),
    [
        ("李四", "14010519900101123X", ("name",)),
        ("张三", "140105199001011234", ("id_number",)),
        ("李四", "140105199001011234", ("name", "id_number")),
        ("", "", ("name", "id_number")),
    ],
)
def test_holder_mismatch(name: str, id_number: str, fields: tuple[str, ...]) -> None:
    assert not holder_matches(record(), name, id_number)
    assert holder_mismatches(record(), name, id_number) == fields
    with pytest.raises(errors.RecordHolderMismatch) as caught:
        ensure_holder(record(), name, id_number)
    assert caught.value.fields == fields
    assert caught.value.code == "credential.record_holder_mismatch"


def test_empty_record_fields_never_match() -> None:
    assert not holder_matches(record(name=" ", id_number=""), " ", "")


def test_normalise_id_number() -> None:
    assert normalise_id_number(" 14010519900101123x ") == "14010519900101123X"


# --- to the contracts ----------------------------------------------------------------------------


def test_record_to_verified_degree() -> None:
    ref = uuid4()
    at = datetime(2025, 3, 1, 2, 5, tzinfo=UTC)
    degree = record().to_verified_degree(
        degree_ref=ref,
        candidate_name="张三",
        candidate_id_number="14010519900101123x",
        verified_at=at,
    )
    assert degree.degree_ref == ref
    assert degree.level is DegreeLevel.BACHELOR
    assert (degree.entry_year, degree.graduation_year) == (2008, 2012)
    assert degree.major_name == "法学"
    assert degree.certificate_number == "101082012050001234"
    assert degree.holder_matches_candidate
    assert degree.chsi_verified_at == at
    assert [c.assessment for c in degree.transcript] == [
        AssessmentMethod.EXAMINATION,
        AssessmentMethod.ASSESSMENT,
        None,
    ]
    assert degree.transcript[0].code == "00242"


def test_verified_degree_drops_implausible_certificate_number_and_flags_mismatch() -> None:
    degree = record(certificate_number="123").to_verified_degree(
        degree_ref=uuid4(),
        candidate_name="李四",
        candidate_id_number="14010519900101123X",
        verified_at=datetime(2025, 3, 1, tzinfo=UTC),
    )
    assert degree.certificate_number is None
    assert not degree.holder_matches_candidate


# --- errors --------------------------------------------------------------------------------------


def test_every_error_is_a_domain_error_with_a_credential_code_and_chinese_message() -> None:
    instances: list[DomainError] = [
        errors.VerificationCodeMalformed(),
        errors.VerificationCodeUnknown(),
        errors.VerificationCodeExpired(),
        errors.AuthorizationNotFound(),
        errors.AuthorizationExpired(),
        errors.AuthorizationAlreadyDecided(),
        errors.RecordHolderMismatch(("name",)),
        errors.RecordUnrecognised("x"),
        errors.CertificateNumberMalformed(),
        errors.ChsiUnavailable(),
        errors.NeeaUnavailable(),
        errors.CallbackSignatureMalformed(),
        errors.CallbackSignatureInvalid(),
        errors.CallbackStale(),
        errors.CallbackMalformed(),
    ]
    codes = {error.code for error in instances}
    assert len(codes) == len(instances)
    for error in instances:
        assert isinstance(error, errors.CredentialError)
        assert error.code.startswith("credential.")
        assert any("\u4e00" <= ch <= "\u9fff" for ch in error.message)
        assert error.detail_en.isascii()
        assert 400 <= error.status < 600


def test_provider_unavailable_is_503_with_retry_after() -> None:
    chsi = errors.ChsiUnavailable("down", retry_after=12)
    assert (chsi.status, chsi.retry_after, chsi.code) == (503, 12, "credential.chsi_unavailable")
    assert chsi.message == "学信网服务暂时不可用，请稍后再试"
    assert errors.ChsiUnavailable().retry_after == 30
    assert errors.NeeaUnavailable(retry_after=0).retry_after == 1
    assert errors.NeeaUnavailable().code == "credential.neea_unavailable"
    assert errors.AuthorizationNotFound().status == 404


def test_certificate_number_with_the_documented_layout() -> None:
    # school 10108, type 1, year 2012, level 20, serial 500012
    assert certificate_number_problem("101081201220500012") is None
    assert certificate_year("101081201220500012") == 2012
