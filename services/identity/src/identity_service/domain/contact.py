"""Contact details (联系方式) a candidate gives: the mobile number rule."""

from __future__ import annotations

import re

from identity_service.domain.errors import DomainError

_MOBILE = re.compile(r"^1[3-9]\d{9}$")


class InvalidMobile(DomainError):
    """Not a mainland mobile number."""

    code = "identity.mobile_invalid"
    field = "mobile"


def check_mobile(text: str) -> str:
    """The mobile number without surrounding blanks; raises InvalidMobile if it is not one."""
    mobile = text.strip()
    if not _MOBILE.match(mobile):
        raise InvalidMobile("请输入11位手机号码", "not a mainland mobile number")
    return mobile
