"""Amounts typed in yuan become fen exactly, or are refused with a reason."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.donors.domain.amounts import AmountRefused, AmountRules, format_yuan

RULES = AmountRules(ceiling_fen=5_000_000)


@pytest.mark.parametrize(
    ("typed", "fen"),
    [
        ("50", 5000),
        ("50.5", 5050),
        ("50.05", 5005),
        ("0.01", 1),
        (" 1 ", 100),
        ("0.29", 29),
        ("50000", 5_000_000),
    ],
)
def test_accepted(typed: str, fen: int) -> None:
    assert RULES.parse_yuan(typed) == fen


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("0", "more than zero"),
        ("0.00", "more than zero"),
        ("-5", "not an amount"),
        ("+5", "not an amount"),
        ("5.001", "two decimals"),
        ("1e3", "not an amount"),
        ("5.", "not an amount"),
        (".5", "not an amount"),
        ("１００", "not an amount"),  # full-width digits
        ("٥", "not an amount"),  # Arabic-Indic digit
        ("1,000", "not an amount"),
        ("abc", "not an amount"),
        ("", "enter an amount"),
        ("NaN", "not an amount"),
        ("50000.01", "at most"),
        ("9" * 30, "too long"),
    ],
)
def test_refused(typed: str, why: str) -> None:
    with pytest.raises(AmountRefused, match=why):
        RULES.parse_yuan(typed)


@given(st.integers(min_value=1, max_value=5_000_000))
def test_round_trip(fen: int) -> None:
    whole, cents = divmod(fen, 100)
    assert RULES.parse_yuan(f"{whole}.{cents:02d}") == fen
    assert RULES.parse_yuan(format_yuan(fen).replace(",", "")) == fen
