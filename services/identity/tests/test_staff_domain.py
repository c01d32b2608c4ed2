"""Staff account rules (pure): usernames, display names, roles, confirmation points."""

from __future__ import annotations

import pytest

from contracts.identity import StaffRole
from identity_service.domain.errors import DomainError
from identity_service.domain.password import WeakPassword, check_password
from identity_service.domain.staff import (
    StaffConfirmationPointsInvalid,
    StaffDisplayNameInvalid,
    StaffRolesInvalid,
    StaffUsernameInvalid,
    StaffUsernameTaken,
    check_staff,
)
from identity_service.service_layer.staff import throttle_key

pytestmark = pytest.mark.unit


def test_a_reviewer_is_normalised() -> None:
    profile = check_staff(
        " XiaoDian.Reviewer1 ",
        " 小店区 审核员一 ",
        ["Reviewer", "reviewer"],
        ["140106", "140105", "140106"],
    )
    assert profile.username == "xiaodian.reviewer1"
    assert profile.display_name == "小店区 审核员一"
    assert profile.roles == (StaffRole.REVIEWER,)
    assert profile.confirmation_points == ("140105", "140106")


@pytest.mark.parametrize(
    "roles", [["senior_reviewer"], ["ops"], ["ops", "senior_reviewer"], ["senior_reviewer", "ops"]]
)
def test_senior_reviewers_and_ops_have_no_points(roles: list[str]) -> None:
    profile = check_staff("shanxi.senior", "省级复审", roles, [])
    assert profile.confirmation_points == ()
    assert [r.value for r in profile.roles] == [
        r for r in ("senior_reviewer", "ops") if r in roles
    ], "stable order, not input order"


@pytest.mark.parametrize(
    ("username", "name", "roles", "points", "error"),
    [
        ("ab", "审核员", ["reviewer"], ["140105"], StaffUsernameInvalid),
        ("-abc", "审核员", ["reviewer"], ["140105"], StaffUsernameInvalid),
        ("zhang san", "审核员", ["reviewer"], ["140105"], StaffUsernameInvalid),
        ("张三abc", "审核员", ["reviewer"], ["140105"], StaffUsernameInvalid),
        ("a" * 65, "审核员", ["reviewer"], ["140105"], StaffUsernameInvalid),
        ("reviewer1", "  ", ["reviewer"], ["140105"], StaffDisplayNameInvalid),
        ("reviewer1", "名" * 51, ["reviewer"], ["140105"], StaffDisplayNameInvalid),
        ("reviewer1", "审核\x00员", ["reviewer"], ["140105"], StaffDisplayNameInvalid),
        ("reviewer1", "审核员", [], [], StaffRolesInvalid),
        ("reviewer1", "审核员", ["admin"], [], StaffRolesInvalid),
        ("reviewer1", "审核员", ["reviewer", "ops"], ["140105"], StaffRolesInvalid),
        ("reviewer1", "审核员", ["reviewer"], [], StaffConfirmationPointsInvalid),
        ("reviewer1", "审核员", ["reviewer"], ["14010"], StaffConfirmationPointsInvalid),
        ("reviewer1", "审核员", ["reviewer"], ["14010a"], StaffConfirmationPointsInvalid),
        ("senior1", "复审员", ["senior_reviewer"], ["140105"], StaffConfirmationPointsInvalid),
        ("ops1", "运维", ["ops"], ["140105"], StaffConfirmationPointsInvalid),
    ],
)
def test_rule_breaks_have_stable_codes_and_chinese_messages(
    username: str, name: str, roles: list[str], points: list[str], error: type[DomainError]
) -> None:
    with pytest.raises(error) as raised:
        check_staff(username, name, roles, points)
    assert raised.value.code.startswith("identity.staff_")
    assert raised.value.status == 422
    assert any("\u4e00" <= c <= "\u9fff" for c in raised.value.message)
    assert raised.value.detail_en.isascii()


def test_taken_is_a_conflict() -> None:
    assert (StaffUsernameTaken.code, StaffUsernameTaken.status) == (
        "identity.staff_username_taken",
        409,
    )


def test_a_password_must_not_contain_the_username() -> None:
    with pytest.raises(WeakPassword):
        check_password("Reviewer1#2026", ["reviewer1"])
    assert check_password("Zikao#2026", ["reviewer1"]) == "Zikao#2026"


def test_throttle_keys_are_per_username_and_never_keep_junk() -> None:
    assert throttle_key(" Reviewer1 ") == "staff:reviewer1"
    junk = throttle_key("my password 123!")
    assert junk.startswith("staff:other:") and "password" not in junk
