"""The password policy refuses what is short, repetitive, common or made of the username."""

from __future__ import annotations

import pytest

from services.staff.domain.passwords import MAX_LENGTH, WeakPassword, check_password


@pytest.mark.parametrize(
    ("password", "why"),
    [
        ("short1!", "at least 12"),
        ("aaaaaaaaaaaaaaaa", "too few different"),
        ("abababab1212", "too few different"),
        ("xx-WangXiaoming-42", "username"),
        ("Password1234", "commonly used"),
        ("x" * 5 + "abcdefg" * 40, "at most"),
    ],
)
def test_weak_passwords_are_refused_saying_why(password: str, why: str) -> None:
    with pytest.raises(WeakPassword, match=why):
        check_password(password, "wangxiaoming")


def test_a_long_varied_password_is_accepted() -> None:
    check_password("correct horse battery staple", "wangxiaoming")
    check_password("慈善账本的长密码很安全呢", "wangxiaoming")
    check_password("a1" + "b" * (MAX_LENGTH - 5) + "cde", "wangxiaoming")
