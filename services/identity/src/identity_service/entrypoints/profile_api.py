"""个人中心 API: the logged-in candidate's profile, contact changes and quick entries."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from identity_service import bootstrap
from identity_service.service_layer.profile import QUICK_ENTRIES, Profile
from servicekit.auth import CurrentCandidate
from servicekit.models import StrictRequest


def _identity(request: Request) -> bootstrap.Identity:
    identity: bootstrap.Identity = request.app.state.identity
    return identity


Service = Annotated[bootstrap.Identity, Depends(_identity)]


class ProfileRead(BaseModel):
    """个人信息. Fields the roster does not carry (民族, 户口性质, 文化程度, 职业, 政治面貌) are
    null until a roster with them is imported."""

    candidate_id: uuid.UUID
    name: str = Field(description="姓名")
    gender: Literal["male", "female"] = Field(description="性别")
    id_number_masked: str = Field(description="身份证号 (masked)")
    admission_ticket_number: str = Field(description="准考证号")
    exam_district: str = Field(description="考区")
    registration_district: str = Field(description="报名区县")
    major_code: str = Field(description="报考专业代码")
    passed_courses: list[str] = Field(description="已合格课程代码")
    mobile_masked: str = Field(description="手机号码 (masked)")
    email: str | None = Field(description="电子邮箱")
    ethnicity: str | None = Field(default=None, description="民族")
    household_type: str | None = Field(default=None, description="户口性质")
    education: str | None = Field(default=None, description="文化程度")
    occupation: str | None = Field(default=None, description="职业")
    political_status: str | None = Field(default=None, description="政治面貌")

    @classmethod
    def of(cls, profile: Profile) -> ProfileRead:
        """From the service layer's profile."""
        return cls(
            candidate_id=profile.candidate_id,
            name=profile.name,
            gender="male" if profile.gender == "male" else "female",
            id_number_masked=profile.id_number_masked,
            admission_ticket_number=profile.admission_ticket_number,
            exam_district=profile.exam_district,
            registration_district=profile.registration_district,
            major_code=profile.major_code,
            passed_courses=list(profile.passed_courses),
            mobile_masked=profile.mobile_masked,
            email=profile.email,
        )


class ContactUpdate(StrictRequest):
    """修改联系方式: a new mobile number and/or e-mail ("" clears the e-mail)."""

    mobile: str | None = Field(default=None, min_length=1, max_length=20)
    email: str | None = Field(default=None, max_length=254)


class QuickEntryRead(BaseModel):
    """A quick entry (快捷入口) and its window state."""

    key: str
    title: str
    state: Literal["open", "closed"]
    message: str


def profile_router() -> APIRouter:
    """The personal-centre routes (candidate tokens only)."""
    router = APIRouter(prefix="/api/identity/me", tags=["personal centre"])

    @router.get("", response_model=ProfileRead)
    async def read_profile(candidate: CurrentCandidate, identity: Service) -> ProfileRead:
        """个人信息."""
        return ProfileRead.of(await identity.profiles.get(uuid.UUID(candidate.account_id)))

    @router.patch("", response_model=ProfileRead)
    async def change_contact(
        body: ContactUpdate, candidate: CurrentCandidate, identity: Service
    ) -> ProfileRead:
        """修改手机号码或电子邮箱."""
        profile = await identity.profiles.change_contact(
            uuid.UUID(candidate.account_id),
            mobile=body.mobile,
            email=body.email or None,
            clear_email=body.email == "",
        )
        return ProfileRead.of(profile)

    @router.get("/entries", response_model=list[QuickEntryRead])
    async def quick_entries(candidate: CurrentCandidate) -> list[QuickEntryRead]:
        """快捷入口 and whether each is open (only 免考申请 is in scope)."""
        return [
            QuickEntryRead(key=e.key, title=e.title, state=e.state, message=e.message)
            for e in QUICK_ENTRIES
        ]

    return router
