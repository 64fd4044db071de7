"""The password policy: what a person may choose. Hashing is services/staff/hashing.py."""

from __future__ import annotations

import unicodedata

MIN_LENGTH = 12
# argon2 hashes anything, but a megabyte of "password" per attempt is a cheap way to burn CPU.
MAX_LENGTH = 256

# The worst of the leaked-password lists, and what people type for a charity's console.
COMMON = frozenset(
    {
        "password1234",
        "123456789012",
        "qwertyuiop12",
        "1q2w3e4r5t6y",
        "administrator",
        "iloveyou1234",
        "changeme1234",
        "welcome12345",
        "charity12345",
        "donation1234",
        "passw0rd1234",
        "letmein12345",
    }
)


class WeakPassword(ValueError):
    """The password is refused; the message says why, in both languages."""


def check_password(password: str, username: str) -> None:
    """Raise WeakPassword unless the password is long, varied and not guessable from the name."""
    text = unicodedata.normalize("NFC", password)
    if len(text) < MIN_LENGTH:
        raise WeakPassword(f"密码至少 {MIN_LENGTH} 个字符 · at least {MIN_LENGTH} characters")
    if len(text) > MAX_LENGTH:
        raise WeakPassword(f"密码最多 {MAX_LENGTH} 个字符 · at most {MAX_LENGTH} characters")
    if len(set(text)) < 5:
        raise WeakPassword("密码字符太单一 · too few different characters")
    lowered = text.casefold()
    if username.casefold() in lowered:
        raise WeakPassword("密码不能包含用户名 · must not contain the username")
    if lowered in COMMON:
        raise WeakPassword("这是常见密码 · a commonly used password")
