"""Bases and shared value types of every event contract.

Payloads carry references, not personal data: a candidate is a `CandidateId`, never an ID-card
number; where a service must see part of a number it gets a `MaskedIdNumber`, and where it must
match a number it holds against a candidate it gets an `IdNumberFingerprint`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from eventkit.envelope import DomainEvent
from eventkit.registry import Upcaster

__all__ = [
    "PERSONAL_DATA_KEY",
    "AdmissionTicketNumber",
    "ApplicationId",
    "CandidateId",
    "CaseNumber",
    "CatalogueVersion",
    "CertificateKind",
    "ConfirmationPointId",
    "ContractEvent",
    "ContractModel",
    "CourseCode",
    "CourseDecision",
    "CourseOutcome",
    "IdNumberFingerprint",
    "MajorCode",
    "MaskedIdNumber",
    "MaskedMobile",
    "PhotoId",
    "ReasonText",
    "ReviewStage",
    "RuleId",
    "ServiceContract",
    "Sha256Hex",
    "StaffId",
    "Stream",
    "StudyPlan",
    "WindowId",
    "event_examples",
    "fingerprint_id_number",
    "mask_id_number",
    "mask_mobile",
]

# Marks a string type as a derived, non-reversible form of personal data; the payload scan in the
# tests only lets fields named like personal data through when their schema carries this mark.
PERSONAL_DATA_KEY = "x-personal-data"


@dataclass(frozen=True)
class Stream:
    """A publishing stream type: one aggregate kind of one service, published to one topic."""

    service: str
    stream_type: str
    topic: str
    id_field: str
    description: str


class ContractModel(BaseModel):
    """Base of value objects nested in payloads: frozen and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ContractEvent(DomainEvent):
    """Base of every published event: knows its type, version, stream type and Kafka topic."""

    stream: ClassVar[Stream]
    stream_type: ClassVar[str]
    topic: ClassVar[str]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Derive `stream_type` and `topic` from the declared stream; refuse incomplete events."""
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            return  # an intermediate base sharing fields between events
        stream = getattr(cls, "stream", None)
        if not isinstance(stream, Stream):
            raise TypeError(f"{cls.__name__} declares event_type but no stream")
        if stream.id_field not in cls.model_fields:
            raise TypeError(f"{cls.__name__} lacks its stream's id field {stream.id_field!r}")
        cls.stream_type = stream.stream_type
        cls.topic = stream.topic

    @property
    def stream_id(self) -> str:
        """The id of the stream (aggregate) this event belongs to; also the Kafka message key."""
        return str(getattr(self, self.stream.id_field))


def event_examples(model: type[BaseModel]) -> list[dict[str, Any]]:
    """The example payloads a model declares in `json_schema_extra`."""
    extra = model.model_config.get("json_schema_extra")
    if not isinstance(extra, dict):
        return []
    examples = extra.get("examples", [])
    if not isinstance(examples, list):
        return []
    return [dict(example) for example in examples if isinstance(example, dict)]


@dataclass(frozen=True)
class ServiceContract:
    """Everything one publishing service promises: its streams, events and upcasters."""

    service: str
    package: str
    streams: tuple[Stream, ...]
    events: tuple[type[ContractEvent], ...]
    upcasters: Mapping[tuple[str, int], Upcaster] = field(default_factory=dict)


# --- identifiers: opaque references issued by the owning service -------------------------------

CandidateId = Annotated[UUID, Field(description="考生: the candidate's account id in identity")]
StaffId = Annotated[UUID, Field(description="工作人员: a staff account id in identity")]
ApplicationId = Annotated[UUID, Field(description="免考申请: the application's id")]
PhotoId = Annotated[UUID, Field(description="证书照片: a photo id in the media service")]
WindowId = Annotated[UUID, Field(description="申请时段: an application window's id")]

# --- codes from the catalogue and the case ------------------------------------------------------

CourseCode = Annotated[
    str,
    StringConstraints(pattern=r"^\d{5}$"),
    Field(description="课程代码: five-digit course code", examples=["00012"]),
]
MajorCode = Annotated[
    str,
    StringConstraints(pattern=r"^\d{6}[A-Z]?$"),
    Field(
        description="专业代码: six digits, optionally a letter (e.g. 030101K)", examples=["580401"]
    ),
]
ConfirmationPointId = Annotated[
    str,
    StringConstraints(pattern=r"^\d{6}$"),
    Field(
        description="免考确认点: the administrative division code of the district office",
        examples=["140105"],
    ),
]
CaseNumber = Annotated[
    str,
    StringConstraints(pattern=r"^MK\d{10}$"),
    Field(description="办件编号: MK + year + six-digit sequence", examples=["MK2025000123"]),
]
CatalogueVersion = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9A-Za-z][0-9A-Za-z._-]{0,63}$"),
    Field(description="version of the imported catalogue and rule table", examples=["2025.1"]),
]
RuleId = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$"),
    Field(description="id of an exemption route in the catalogue's rule table", examples=["CET4"]),
]
AdmissionTicketNumber = Annotated[
    str,
    StringConstraints(pattern=r"^\d{10,15}$"),
    Field(
        description="准考证号: the candidate's admission-ticket number", examples=["010118100001"]
    ),
]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
ReasonText = Annotated[str, StringConstraints(min_length=1, max_length=500)]

# --- personal data, only in derived forms -------------------------------------------------------

_ID_NUMBER = re.compile(r"^\d{17}[\dX]$")
_MOBILE = re.compile(r"^1\d{10}$")

MaskedIdNumber = Annotated[
    str,
    StringConstraints(pattern=r"^\d{4}\*{10}\d{3}[\dX]$"),
    Field(
        description="身份证号 masked for display: first four and last four characters",
        examples=["1401**********123X"],
        json_schema_extra={PERSONAL_DATA_KEY: "masked"},
    ),
]
IdNumberFingerprint = Annotated[
    str,
    StringConstraints(pattern=r"^[0-9a-f]{64}$"),
    Field(
        description="HMAC-SHA256 of the ID-card number under the platform key, for matching",
        json_schema_extra={PERSONAL_DATA_KEY: "fingerprint"},
    ),
]
MaskedMobile = Annotated[
    str,
    StringConstraints(pattern=r"^1\d{2}\*{4}\d{4}$"),
    Field(
        description="手机号 masked for display",
        examples=["138****5678"],
        json_schema_extra={PERSONAL_DATA_KEY: "masked"},
    ),
]


def mask_id_number(id_number: str) -> str:
    """The display form of an 18-character ID-card number, e.g. 1401**********123X."""
    value = id_number.strip().upper()
    if not _ID_NUMBER.match(value):
        raise ValueError("not an 18-character ID-card number")
    return f"{value[:4]}{'*' * 10}{value[-4:]}"


def mask_mobile(mobile: str) -> str:
    """The display form of a mainland mobile number, e.g. 138****5678."""
    value = mobile.strip()
    if not _MOBILE.match(value):
        raise ValueError("not an 11-digit mobile number")
    return f"{value[:3]}****{value[-4:]}"


# DEV ONLY, public (it is in the repository): the fingerprint key a laptop and the tests use. Every
# service that matches ID numbers by fingerprint (identity, credential-verify) gets the same
# production key from the secret store instead.
DEV_ONLY_ID_FINGERPRINT_KEY = b"DEV-ONLY lookup key: not in prod"


def fingerprint_id_number(id_number: str, key: bytes) -> str:
    """The matching form of an ID-card number: HMAC-SHA256 (hex) of its normalised text."""
    value = id_number.strip().upper()
    if not _ID_NUMBER.match(value):
        raise ValueError("not an 18-character ID-card number")
    if len(key) < 16:
        raise ValueError("fingerprint key must be at least 16 bytes")
    return hmac.new(key, value.encode("ascii"), hashlib.sha256).hexdigest()


# --- shared enumerations and value objects ------------------------------------------------------


class StudyPlan(StrEnum):
    """新旧计划: whether courses come from the old or the new examination plan."""

    OLD = "old"
    NEW = "new"


class CertificateKind(StrEnum):
    """证书类型: the certificate types an application may rest on (seed, wizard step 2)."""

    DEGREE = "degree"
    CET4_OR_ABOVE = "cet4_or_above"
    PETS2_OR_ABOVE = "pets2_or_above"
    PETS3_OR_ABOVE = "pets3_or_above"
    NCRE1_OR_ABOVE = "ncre1_or_above"
    NCRE2_OR_ABOVE = "ncre2_or_above"
    NIT_MANAGEMENT_IT = "nit_management_it"
    NIT_BASICS_PLUS_ONE = "nit_basics_plus_one"

    @property
    def label(self) -> str:
        """The short Chinese name pages show (the wizard words the choice as the seed does)."""
        return _CERTIFICATE_KIND_LABELS[self.value]


_CERTIFICATE_KIND_LABELS = {
    "degree": "学历证书（专科及以上）",
    "cet4_or_above": "全国大学英语四级及以上",
    "pets2_or_above": "全国英语等级考试二级及以上",
    "pets3_or_above": "全国英语等级考试三级及以上",
    "ncre1_or_above": "全国计算机等级考试一级及以上",
    "ncre2_or_above": "全国计算机等级考试二级及以上",
    "nit_management_it": "NIT《管理系统中信息技术的应用》",
    "nit_basics_plus_one": "NIT《计算机应用基础》及另一模块",
}


class ReviewStage(StrEnum):
    """审核阶段: 初审 at the confirmation point, 复审 at the provincial office."""

    CONFIRMATION_POINT = "confirmation_point"
    PROVINCIAL = "provincial"


class CourseOutcome(StrEnum):
    """免考结论 for one course: 同意免考 or 不同意."""

    GRANTED = "granted"
    DENIED = "denied"


class CourseDecision(ContractModel):
    """The decision on one claimed course, with the reason when it is denied."""

    course_code: CourseCode
    major_code: MajorCode = Field(description="the major the course was claimed under")
    outcome: CourseOutcome = Field(description="同意免考 (granted) or 不同意 (denied)")
    reason: ReasonText | None = Field(
        default=None, description="why the course is denied (shown to the candidate)"
    )
