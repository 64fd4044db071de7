import pytest

from services.ledger.domain.money import CurrencyMismatch, Money


def test_money_is_integer_fen_only() -> None:
    with pytest.raises(TypeError):
        Money(1.5, "CNY")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Money(True, "CNY")
    with pytest.raises(ValueError):
        Money(1, "yuan")


def test_arithmetic_keeps_the_currency_and_refuses_to_mix() -> None:
    assert Money(150, "CNY") + Money(50, "CNY") == Money(200, "CNY")
    assert Money(150, "CNY") - Money(200, "CNY") == Money(-50, "CNY")
    with pytest.raises(CurrencyMismatch):
        Money(1, "CNY") + Money(1, "USD")
    with pytest.raises(CurrencyMismatch):
        _ = Money(1, "CNY") < Money(1, "HKD")


def test_formatting_uses_integer_maths() -> None:
    assert Money(123456789, "CNY").format_yuan() == "¥1,234,567.89"
    assert Money(-5, "CNY").format_yuan() == "-¥0.05"
    assert Money(100, "USD").format_yuan() == "USD 1.00"
