"""Domain rules: the QR authorisation state machine and certificate check requests."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from uuid import uuid4

import pytest

from contracts.credential import CertificateExam, CertificateFailureReason
from credential_verify_service.domain import errors
from credential_verify_service.domain.authorization import AuthorizationStatus, QrAuthorization
from credential_verify_service.domain.certificates import (
    CertificateCheckRequest,
    CertificateConfirmed,
    CertificateHolderMismatch,
    CertificateNotFound,
    parse_exam_certificate_number,
)

pytestmark = pytest.mark.unit

T0 = datetime(2025, 3, 1, 2, 0, tzinfo=UTC)
EXPIRES = T0 + timedelta(minutes=5)
CANDIDATE = uuid4()


def fresh() -> QrAuthorization:
    return QrAuthorization.request(
        authorization_id=uuid4(),
        candidate_id=CANDIDATE,
        ticket="tkt_abcdefghijklmnopqrstuvwxyz012345",
        expires_at=EXPIRES,
        now=T0,
    )


# --- authorisation -------------------------------------------------------------------------------


def test_request_starts_requested() -> None:
    auth = fresh()
    assert auth.status is AuthorizationStatus.REQUESTED
    assert auth.decided_at is None
    assert not auth.is_decided
    assert not auth.is_lapsed(T0)
    assert auth.is_lapsed(EXPIRES)


def test_request_must_expire_in_the_future_and_have_a_ticket() -> None:
    with pytest.raises(errors.AuthorizationExpired):
        QrAuthorization.request(
            authorization_id=uuid4(), candidate_id=CANDIDATE, ticket="t", expires_at=T0, now=T0
        )
    with pytest.raises(ValueError, match="ticket"):
        QrAuthorization.request(
            authorization_id=uuid4(), candidate_id=CANDIDATE, ticket="", expires_at=EXPIRES, now=T0
        )


def test_approve_before_expiry() -> None:
    auth = fresh()
    now = T0 + timedelta(minutes=1)
    result = auth.approve(now, ticket=auth.ticket, candidate_id=CANDIDATE)
    assert result.changed
    assert not result.already_recorded
    assert result.authorization.status is AuthorizationStatus.APPROVED
    assert result.authorization.decided_at == now
    assert result.authorization.is_decided
    assert auth.status is AuthorizationStatus.REQUESTED  # immutable


def test_duplicate_approval_is_already_recorded() -> None:
    approved = fresh().approve(T0 + timedelta(minutes=1)).authorization
    again = approved.approve(T0 + timedelta(minutes=10))
    assert again.already_recorded
    assert again.authorization is approved


def test_approve_after_expiry_is_refused() -> None:
    auth = fresh()
    with pytest.raises(errors.AuthorizationExpired):
        auth.approve(EXPIRES)
    with pytest.raises(errors.AuthorizationExpired):
        auth.approve(EXPIRES + timedelta(seconds=1))


def test_decision_time_from_chsi_counts_for_late_callbacks() -> None:
    auth = fresh()
    result = auth.approve(EXPIRES + timedelta(minutes=2), decided_at=T0 + timedelta(minutes=4))
    assert result.authorization.decided_at == T0 + timedelta(minutes=4)
    with pytest.raises(errors.AuthorizationExpired):
        auth.approve(T0, decided_at=EXPIRES + timedelta(seconds=1))


def test_approve_for_another_candidate_looks_like_not_found() -> None:
    with pytest.raises(errors.AuthorizationNotFound) as caught:
        fresh().approve(T0, candidate_id=uuid4())
    assert caught.value.status == 404
    with pytest.raises(errors.AuthorizationNotFound):
        fresh().ensure_owned_by(uuid4())
    fresh().ensure_owned_by(CANDIDATE)


def test_approve_with_a_foreign_ticket_is_not_found() -> None:
    with pytest.raises(errors.AuthorizationNotFound):
        fresh().approve(T0, ticket="another-ticket")


def test_deny_then_approve_is_already_decided_and_vice_versa() -> None:
    denied = fresh().deny(T0).authorization
    assert denied.status is AuthorizationStatus.DENIED
    assert denied.deny(T0).already_recorded
    with pytest.raises(errors.AuthorizationAlreadyDecided):
        denied.approve(T0)
    approved = fresh().approve(T0).authorization
    with pytest.raises(errors.AuthorizationAlreadyDecided) as caught:
        approved.deny(T0)
    assert caught.value.status == 409


def test_expire_transitions() -> None:
    auth = fresh()
    assert auth.expire(T0).already_recorded  # not yet due
    expired = auth.expire(EXPIRES)
    assert expired.changed
    assert expired.authorization.status is AuthorizationStatus.EXPIRED
    assert expired.authorization.is_lapsed(T0)
    assert expired.authorization.expire(EXPIRES).already_recorded
    with pytest.raises(errors.AuthorizationExpired):
        expired.authorization.approve(T0, decided_at=T0)
    decided = fresh().approve(T0).authorization
    assert decided.expire(EXPIRES + timedelta(days=1)).already_recorded
    assert decided.status is AuthorizationStatus.APPROVED


# --- certificates --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exam", "number"),
    [
        (CertificateExam.CET4, "191234567890123"),
        (CertificateExam.CET6, "1912-3456-7890-123"),
        (CertificateExam.NCRE, "123456789012345"),
        (CertificateExam.NCRE, "1234567890123456"),
        (CertificateExam.PETS, "123456789012"),
        (CertificateExam.PETS, "123456789012345678"),
        (CertificateExam.NIT, "1234567890"),
        (CertificateExam.NIT, "１２３４５６７８９０１２"),
    ],
)
def test_certificate_numbers_accepted(exam: CertificateExam, number: str) -> None:
    parsed = parse_exam_certificate_number(exam, number)
    assert parsed.isdigit()
    assert parsed.isascii()


@pytest.mark.parametrize(
    ("exam", "number"),
    [
        (CertificateExam.CET4, "12345678901234"),  # 14
        (CertificateExam.CET6, "1234567890123456"),  # 16
        (CertificateExam.NCRE, "12345678901234"),
        (CertificateExam.NCRE, "12345678901234567"),
        (CertificateExam.PETS, "12345678901"),
        (CertificateExam.NIT, "123456789"),
        (CertificateExam.NIT, "1234567890123456789"),
        (CertificateExam.CET4, "000000000000000"),
        (CertificateExam.CET4, "19123456789012A"),
        (CertificateExam.CET4, ""),
        (CertificateExam.NCRE, "١٢٣٤٥٦٧٨٩٠١٢٣٤٥"),  # Arabic-Indic digits
    ],
)
def test_certificate_numbers_refused(exam: CertificateExam, number: str) -> None:
    with pytest.raises(errors.CertificateNumberMalformed) as caught:
        parse_exam_certificate_number(exam, number)
    assert caught.value.code == "credential.certificate_number_malformed"


def test_check_request_normalises_and_names_the_provider_exam() -> None:
    request = CertificateCheckRequest.create(
        CertificateExam.CET6, " 191234567890123 ", " 张三 ", "14010519900101123x"
    )
    assert request.certificate_number == "191234567890123"
    assert request.name == "张三"
    assert request.id_number == "14010519900101123X"
    assert request.provider_exam == "CET"
    assert CertificateCheckRequest.create(
        CertificateExam.NIT, "1234567890", "a", "b"
    ).provider_exam == ("NIT")


def test_outcomes() -> None:
    confirmed = CertificateConfirmed(
        exam="CET",
        certificate_number="191234567890123",
        name="张三",
        level=4,
        subject=None,
        score=480,
        exam_session="2019年12月",
        issued_on=date(2020, 2, 20),
    )
    assert confirmed.exam_session_iso == "2019-12"
    odd = CertificateConfirmed(
        exam="NIT",
        certificate_number="1234567890",
        name="张三",
        level=None,
        subject="计算机应用基础",
        score=None,
        exam_session="2019年上半年",
        issued_on=date(2019, 8, 1),
    )
    assert odd.exam_session_iso is None
    assert CertificateNotFound().reason_code is CertificateFailureReason.NOT_FOUND
    mismatch = CertificateHolderMismatch(("name",))
    assert mismatch.reason_code is CertificateFailureReason.HOLDER_MISMATCH
    assert mismatch.reason
