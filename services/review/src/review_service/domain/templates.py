"""Common reasons offered to reviewers as templates (常用原因); free text is always allowed.

Each template has a stable id, so the UI can offer them and analytics can count them, while the
event records the text as the reviewer sent it (possibly edited).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReasonKind(StrEnum):
    """Where a template is offered: returning the application, or denying one course."""

    RETURN = "return"  # 退回原因
    DENIAL = "denial"  # 不同意免考的原因


@dataclass(frozen=True, slots=True)
class ReasonTemplate:
    """One common reason."""

    template_id: str
    kind: ReasonKind
    text: str


RETURN_REASONS: tuple[ReasonTemplate, ...] = (
    ReasonTemplate("R01", ReasonKind.RETURN, "证书照片不清晰，请重新上传"),
    ReasonTemplate("R02", ReasonKind.RETURN, "证书照片不完整，请上传证书全页照片"),
    ReasonTemplate("R03", ReasonKind.RETURN, "成绩单未加盖学校公章"),
    ReasonTemplate("R04", ReasonKind.RETURN, "成绩单未勾选（√）用于免考的课程"),
    ReasonTemplate("R05", ReasonKind.RETURN, "所选课程与证书不符，请重新选择免考课程"),
    ReasonTemplate("R06", ReasonKind.RETURN, "学历未通过学信网验证，请完成学历验证后重新申请"),
    ReasonTemplate("R07", ReasonKind.RETURN, "证书信息与本人身份信息不一致"),
    ReasonTemplate("R08", ReasonKind.RETURN, "未到免考确认点核验证书原件，请携带原件现场确认"),
    ReasonTemplate("R09", ReasonKind.RETURN, "上传的材料与所选证书类型不符"),
)

DENIAL_REASONS: tuple[ReasonTemplate, ...] = (
    ReasonTemplate("D01", ReasonKind.DENIAL, "所选课程与证书不符"),
    ReasonTemplate("D02", ReasonKind.DENIAL, "证书级别或成绩未达到免考要求"),
    ReasonTemplate("D03", ReasonKind.DENIAL, "证书取得时间不在有效期内"),
    ReasonTemplate("D04", ReasonKind.DENIAL, "原课程名称与免考课程名称不一致"),
    ReasonTemplate("D05", ReasonKind.DENIAL, "原课程学分（学时）低于免考课程学分"),
    ReasonTemplate("D06", ReasonKind.DENIAL, "原课程为考查课程或非百分制成绩"),
    ReasonTemplate("D07", ReasonKind.DENIAL, "学历未通过学信网验证"),
    ReasonTemplate("D08", ReasonKind.DENIAL, "以学历免考的课程超过该专业课程总数的一半"),
    ReasonTemplate("D09", ReasonKind.DENIAL, "证书原件核验不一致"),
)

ALL_TEMPLATES: tuple[ReasonTemplate, ...] = RETURN_REASONS + DENIAL_REASONS
_BY_ID = {template.template_id: template for template in ALL_TEMPLATES}


def template(template_id: str) -> ReasonTemplate | None:
    """The template of that id, if any."""
    return _BY_ID.get(template_id)


def templates_for(kind: ReasonKind | str) -> tuple[ReasonTemplate, ...]:
    """The templates offered for `kind`, in display order."""
    wanted = ReasonKind(kind)
    return tuple(t for t in ALL_TEMPLATES if t.kind is wanted)
