"""Application windows (申请时段): when candidates apply, points confirm, the province decides.

A window's stages follow each other: candidates apply in [opens_at, applications_close_at),
confirmation points review until point_review_close_at, the province decides until
province_review_close_at, and results are published at results_published_at. Ops may close a
window early (`closed_by_ops`), which stops applications and resubmissions at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import pairwise

from application_service.domain.errors import InvalidInput, InvalidWindow
from eventkit.text import has_control_characters, is_blank


class WindowStage(StrEnum):
    """Where a window is at a given moment."""

    NOT_OPEN = "not_open"  # 未开放
    APPLYING = "applying"  # 申请中
    POINT_REVIEW = "point_review"  # 确认点审核
    PROVINCE_REVIEW = "province_review"  # 省级审核
    AWAITING_RESULTS = "awaiting_results"  # 待公布
    RESULTS_PUBLISHED = "results_published"  # 结果已公布
    CLOSED = "closed"  # 已关闭 (by ops)

    @property
    def label(self) -> str:
        """The Chinese label."""
        return {
            "not_open": "未开放",
            "applying": "申请中",
            "point_review": "确认点审核中",
            "province_review": "省级审核中",
            "awaiting_results": "待公布结果",
            "results_published": "结果已公布",
            "closed": "已关闭",
        }[self.value]


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{name} must be timezone-aware")


@dataclass(frozen=True, slots=True)
class ApplicationWindow:
    """One application window; its deadlines are validated on construction."""

    window_id: uuid.UUID
    name: str
    opens_at: datetime
    applications_close_at: datetime
    point_review_close_at: datetime
    province_review_close_at: datetime
    results_published_at: datetime
    closed_by_ops: bool = False

    def __post_init__(self) -> None:
        if is_blank(self.name) or has_control_characters(self.name):
            raise InvalidWindow("a window has a name", "申请时段名称不能为空")
        moments = [
            ("opens_at", self.opens_at),
            ("applications_close_at", self.applications_close_at),
            ("point_review_close_at", self.point_review_close_at),
            ("province_review_close_at", self.province_review_close_at),
            ("results_published_at", self.results_published_at),
        ]
        for name, moment in moments:
            if moment.tzinfo is None or moment.utcoffset() is None:
                raise InvalidWindow(f"{name} must be timezone-aware")
        for (earlier_name, earlier), (later_name, later) in pairwise(moments):
            if not earlier < later:
                raise InvalidWindow(f"{earlier_name} must be before {later_name}")

    def stage(self, now: datetime) -> WindowStage:
        """The stage at `now` (timezone-aware)."""
        _require_aware(now, "now")
        if self.closed_by_ops:
            return WindowStage.CLOSED
        if now < self.opens_at:
            return WindowStage.NOT_OPEN
        if now < self.applications_close_at:
            return WindowStage.APPLYING
        if now < self.point_review_close_at:
            return WindowStage.POINT_REVIEW
        if now < self.province_review_close_at:
            return WindowStage.PROVINCE_REVIEW
        if now < self.results_published_at:
            return WindowStage.AWAITING_RESULTS
        return WindowStage.RESULTS_PUBLISHED

    def accepting_applications(self, now: datetime) -> bool:
        """Candidates may draft, edit and submit applications."""
        return self.stage(now) is WindowStage.APPLYING

    def accepting_resubmissions(self, now: datetime) -> bool:
        """A returned application may be fixed and resubmitted until the point-review deadline."""
        return self.stage(now) in (WindowStage.APPLYING, WindowStage.POINT_REVIEW)
