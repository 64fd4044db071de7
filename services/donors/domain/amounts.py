"""Amounts donors type, in yuan, turned into fen exactly.

A donor types "50", "50.5" or "50.05"; the ledger counts fen. The text is
parsed as text (never through float, which would turn 0.29 into 28.999… fen),
and anything a person might mistype is refused with a reason they can act on:
more than two decimals, full-width digits, exponents, signs, thousands
separators, zero, or more than the ceiling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ASCII digits only: str.isdigit() and \d also accept full-width and other scripts' digits.
_YUAN = re.compile(r"(?P<whole>[0-9]+)(?:\.(?P<frac>[0-9]{1,2}))?")
_MAX_TEXT = 20  # longer than any ceiling written in yuan


class AmountRefused(ValueError):
    """Why the typed amount cannot be a gift, in Chinese and English."""

    def __init__(self, reason: str, over_ceiling: bool = False) -> None:
        super().__init__(reason)
        self.over_ceiling = over_ceiling


@dataclass(frozen=True)
class AmountRules:
    ceiling_fen: int

    def parse_yuan(self, text: str) -> int:
        """'50.05' → 5005. Raises AmountRefused with the reason."""
        typed = text.strip()
        if not typed:
            raise AmountRefused("请输入金额 · enter an amount")
        if len(typed) > _MAX_TEXT:
            raise AmountRefused("金额过长 · the amount is too long")
        match = _YUAN.fullmatch(typed)
        if match is None:
            if re.fullmatch(r"[0-9]+\.[0-9]{3,}", typed):
                raise AmountRefused("金额最多两位小数（分） · at most two decimals (fen)")
            raise AmountRefused(
                f"金额格式不正确：{typed!r}，请用数字，如 50 或 50.5 · "
                f"not an amount: {typed!r}; use digits such as 50 or 50.5"
            )
        fen = int(match["whole"]) * 100 + int((match["frac"] or "0").ljust(2, "0"))
        return self.check_fen(fen)

    def check_fen(self, fen: int) -> int:
        if fen <= 0:
            raise AmountRefused("金额须大于零 · the amount must be more than zero")
        if fen > self.ceiling_fen:
            raise AmountRefused(
                f"单笔捐赠上限为 {format_yuan(self.ceiling_fen)} 元 · "
                f"one gift may be at most {format_yuan(self.ceiling_fen)} yuan",
                over_ceiling=True,
            )
        return fen


def format_yuan(fen: int) -> str:
    """5005 → '50.05'; 5000 → '50'."""
    whole, cents = divmod(fen, 100)
    return f"{whole:,}" if cents == 0 else f"{whole:,}.{cents:02d}"
