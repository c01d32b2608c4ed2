"""Staff account rules (工作人员账号): usernames, display names, roles and confirmation points."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from contracts.identity import StaffRole
from identity_service.domain.errors import DomainError

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,63}$")
CONFIRMATION_POINT = re.compile(r"^\d{6}$")
DISPLAY_NAME_MAX = 50
MAX_CONFIRMATION_POINTS = 200


class StaffUsernameInvalid(DomainError):
    """The username breaks the pattern (lower-case letters, digits, '.', '_', '-'; 3-64)."""

    code = "identity.staff_username_invalid"
    status = 422


class StaffUsernameTaken(DomainError):
    """Another staff account already has this username."""

    code = "identity.staff_username_taken"
    status = 409


class StaffDisplayNameInvalid(DomainError):
    """The display name is empty, too long or holds control characters."""

    code = "identity.staff_display_name_invalid"
    status = 422


class StaffRolesInvalid(DomainError):
    """No role, an unknown role, or roles that cannot be combined."""

    code = "identity.staff_roles_invalid"
    status = 422


class StaffConfirmationPointsInvalid(DomainError):
    """A reviewer without confirmation points, other roles with some, or a malformed code."""

    code = "identity.staff_confirmation_points_invalid"
    status = 422


@dataclass(frozen=True)
class StaffProfile:
    """A staff account's checked, normalised data (everything but the password)."""

    username: str
    display_name: str
    roles: tuple[StaffRole, ...]
    confirmation_points: tuple[str, ...]


@dataclass(frozen=True)
class StaffPrincipal:
    """What a staff token carries: the account id, its roles and its confirmation points."""

    staff_id: str
    roles: tuple[str, ...]
    confirmation_points: tuple[str, ...]


def normalise_username(text: str) -> str:
    """Usernames compare after NFKC, without surrounding blanks, in lower case."""
    return unicodedata.normalize("NFKC", text).strip().lower()


def check_username(text: str) -> str:
    """The normalised username, or StaffUsernameInvalid."""
    username = normalise_username(text)
    if not USERNAME.match(username):
        raise StaffUsernameInvalid(
            "用户名须为3至64位小写英文字母、数字或“.”“_”“-”，并以字母或数字开头",
            "username must match ^[a-z0-9][a-z0-9._-]{2,63}$",
        )
    return username


def check_display_name(text: str) -> str:
    """The normalised display name (NFKC, trimmed), or StaffDisplayNameInvalid."""
    name = unicodedata.normalize("NFKC", text).strip()
    if not 1 <= len(name) <= DISPLAY_NAME_MAX:
        raise StaffDisplayNameInvalid(
            f"显示名称应为1至{DISPLAY_NAME_MAX}个字符",
            f"display name must be 1-{DISPLAY_NAME_MAX} characters",
        )
    if any(unicodedata.category(c).startswith("C") for c in name):
        raise StaffDisplayNameInvalid(
            "显示名称不能包含控制字符", "display name holds control characters"
        )
    return name


def check_roles(roles: Iterable[str]) -> tuple[StaffRole, ...]:
    """Known roles, without repeats, in a stable order; a reviewer holds no other role."""
    chosen: set[StaffRole] = set()
    for role in roles:
        try:
            chosen.add(StaffRole(role.strip().lower()))
        except ValueError:
            raise StaffRolesInvalid(
                "角色只能是 reviewer（初审）、senior_reviewer（复审）或 ops（运维）",
                f"unknown role {role[:40]!r}",
            ) from None
    if not chosen:
        raise StaffRolesInvalid("至少需要一个角色", "at least one role is required")
    if StaffRole.REVIEWER in chosen and len(chosen) > 1:
        raise StaffRolesInvalid(
            "初审人员（reviewer）绑定确认点，不能同时担任复审或运维",
            "a reviewer cannot also be senior_reviewer or ops",
        )
    return tuple(role for role in StaffRole if role in chosen)


def check_confirmation_points(
    roles: tuple[StaffRole, ...], points: Iterable[str]
) -> tuple[str, ...]:
    """Six-digit district codes, without repeats, sorted: some for reviewers, none otherwise."""
    codes: set[str] = set()
    for point in points:
        code = unicodedata.normalize("NFKC", point).strip()
        if not CONFIRMATION_POINT.match(code):
            raise StaffConfirmationPointsInvalid(
                "确认点须为6位行政区划代码，例如 140105", f"not a 6-digit code: {point[:20]!r}"
            )
        codes.add(code)
    if StaffRole.REVIEWER in roles and not codes:
        raise StaffConfirmationPointsInvalid(
            "初审人员至少需要绑定一个确认点", "a reviewer needs at least one confirmation point"
        )
    if StaffRole.REVIEWER not in roles and codes:
        raise StaffConfirmationPointsInvalid(
            "复审人员和运维人员不绑定确认点",
            "senior reviewers and ops have no confirmation points",
        )
    if len(codes) > MAX_CONFIRMATION_POINTS:
        raise StaffConfirmationPointsInvalid(
            f"确认点不能超过{MAX_CONFIRMATION_POINTS}个",
            f"at most {MAX_CONFIRMATION_POINTS} confirmation points",
        )
    return tuple(sorted(codes))


def check_staff(
    username: str, display_name: str, roles: Iterable[str], confirmation_points: Iterable[str]
) -> StaffProfile:
    """A new staff account's data checked against every rule but the password's."""
    checked_username = check_username(username)
    checked_name = check_display_name(display_name)
    checked_roles = check_roles(roles)
    return StaffProfile(
        username=checked_username,
        display_name=checked_name,
        roles=checked_roles,
        confirmation_points=check_confirmation_points(checked_roles, confirmation_points),
    )
