"""Password rules."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity_service.domain.password import WeakPassword, character_classes, check_password

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("password", ["Zikao#2026", "abcDEF123", "x9!x9!x9!A", "Ｚikao#2026"])
def test_good_passwords_pass(password: str) -> None:
    assert check_password(password, ["14010519900101123X"])


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("Ab1!", "长度"),
        ("A" * 30 + "b1!" * 12, "长度"),
        ("abcdefgh", "三种"),
        ("abcd1234", "三种"),
        ("Abcd 1234", "空格"),
        ("密码Abcd1234", "中文"),
        ("Password123", "常见"),
        ("P@ssw0rd", "常见"),
        ("Xx19900101!", "身份证号"),
        ("ab010118100001C", "准考证号"),
    ],
)
def test_weak_passwords_are_refused_with_a_reason(password: str, fragment: str) -> None:
    with pytest.raises(WeakPassword) as refused:
        check_password(password, ["14010519900101123X", "19900101", "010118100001"])
    assert fragment in refused.value.message
    assert refused.value.code == "identity.password_weak"


@given(st.text(min_size=0, max_size=100))
def test_any_text_either_passes_or_is_refused_cleanly(text: str) -> None:
    try:
        result = check_password(text)
    except WeakPassword:
        return
    assert 8 <= len(result) <= 64
    assert character_classes(result) >= 3
