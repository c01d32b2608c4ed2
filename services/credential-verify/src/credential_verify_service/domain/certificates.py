"""证书核验: a certificate check request against NEEA and its three outcomes.

Certificate number shapes (assumptions, deliberately lenient; they only reject obvious garbage,
NEEA has the last word):
- CET (四六级): 15 digits (the number on the certificate / score report).
- NCRE (计算机等级考试): 15 or 16 digits.
- PETS (全国英语等级考试): 12 to 18 digits (formats changed over the years).
- NIT (全国计算机应用技术证书): 10 to 18 digits (formats changed over the years).
- For every exam: ASCII digits only, after folding full-width digits and dropping spaces and
  hyphens; a number made of one repeated digit (000000000000000) is garbage.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

from contracts.credential import CertificateExam, CertificateFailureReason
from credential_verify_service.domain.errors import CertificateNumberMalformed
from credential_verify_service.domain.records import normalise_id_number, normalise_name

NUMBER_LENGTHS: dict[CertificateExam, tuple[int, int]] = {
    CertificateExam.CET4: (15, 15),
    CertificateExam.CET6: (15, 15),
    CertificateExam.NCRE: (15, 16),
    CertificateExam.PETS: (12, 18),
    CertificateExam.NIT: (10, 18),
}
# NEEA's protocol names the exam family, not the CET band.
PROVIDER_EXAMS: dict[CertificateExam, str] = {
    CertificateExam.CET4: "CET",
    CertificateExam.CET6: "CET",
    CertificateExam.PETS: "PETS",
    CertificateExam.NCRE: "NCRE",
    CertificateExam.NIT: "NIT",
}
_SEPARATORS = re.compile(r"[\s\-]+")
_SESSION = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月")


def normalise_certificate_number(text: str) -> str:
    return _SEPARATORS.sub("", unicodedata.normalize("NFKC", text))


def parse_exam_certificate_number(exam: CertificateExam, text: str) -> str:
    """Normalise and check a certificate number for `exam`; raises CertificateNumberMalformed."""
    number = normalise_certificate_number(text)
    low, high = NUMBER_LENGTHS[exam]
    if not (number.isascii() and number.isdigit()):
        raise CertificateNumberMalformed(f"{exam} certificate number must be digits only")
    if not low <= len(number) <= high:
        expected = str(low) if low == high else f"{low}-{high}"
        raise CertificateNumberMalformed(
            f"{exam} certificate number has {len(number)} digits, expected {expected}"
        )
    if len(set(number)) == 1:
        raise CertificateNumberMalformed(f"{exam} certificate number is one repeated digit")
    return number


@dataclass(frozen=True)
class CertificateCheckRequest:
    """What we ask NEEA: the exam, the certificate number, and the candidate's name and ID."""

    exam: CertificateExam
    certificate_number: str
    name: str
    id_number: str

    @classmethod
    def create(
        cls, exam: CertificateExam, certificate_number: str, name: str, id_number: str
    ) -> CertificateCheckRequest:
        """Normalise every field and check the number's shape (CertificateNumberMalformed)."""
        return cls(
            exam=exam,
            certificate_number=parse_exam_certificate_number(exam, certificate_number),
            name=normalise_name(name),
            id_number=normalise_id_number(id_number),
        )

    @property
    def provider_exam(self) -> str:
        return PROVIDER_EXAMS[self.exam]


@dataclass(frozen=True)
class CertificateConfirmed:
    """NEEA confirmed the certificate and that name and ID number are the candidate's."""

    exam: str  # as NEEA names it: CET | PETS | NCRE | NIT
    certificate_number: str
    name: str
    level: int | None  # CET band (4, 6), PETS level (1-5), NCRE level (1-4)
    subject: str | None  # NCRE subject or NIT module
    score: int | None  # CET total (0-710)
    exam_session: str  # as printed, e.g. 2019年12月
    issued_on: date

    @property
    def exam_session_iso(self) -> str | None:
        """The session as YYYY-MM (the contracts' form), or None when it cannot be read."""
        found = _SESSION.search(self.exam_session)
        if found is None or not 1 <= int(found.group(2)) <= 12:
            return None
        return f"{found.group(1)}-{int(found.group(2)):02d}"


@dataclass(frozen=True)
class CertificateNotFound:
    """NEEA has no such certificate."""

    reason_code = CertificateFailureReason.NOT_FOUND
    reason = "未查询到该证书，请核对证书编号"


@dataclass(frozen=True)
class CertificateHolderMismatch:
    """The certificate exists but belongs to someone else by `fields` (name, id_number)."""

    fields: tuple[str, ...]

    reason_code = CertificateFailureReason.HOLDER_MISMATCH
    reason = "证书持有人的姓名或身份证号与考生本人信息不一致"


CertificateOutcome = CertificateConfirmed | CertificateNotFound | CertificateHolderMismatch
