"""Matching a payment to its pledge, and what of a name travels on the topics."""

from __future__ import annotations

import pytest

from services.donors.domain.pledges import (
    PaymentMismatch,
    check_payment,
    display_name_for_events,
    out_trade_no_for,
)
from tests.fixtures.factories import a_pledge

PLEDGE = a_pledge()
DONATION = PLEDGE.donation_id


def test_out_trade_no_fits_the_provider() -> None:
    assert out_trade_no_for(DONATION) == DONATION.replace("-", "")
    assert len(out_trade_no_for(DONATION)) == 32


def test_payment_must_match_to_the_fen() -> None:
    check_payment(PLEDGE, PLEDGE.out_trade_no, 5000, "CNY")
    with pytest.raises(PaymentMismatch, match="paid 4999 fen, pledged 5000"):
        check_payment(PLEDGE, PLEDGE.out_trade_no, 4999, "CNY")
    with pytest.raises(PaymentMismatch, match="paid in USD"):
        check_payment(PLEDGE, PLEDGE.out_trade_no, 5000, "USD")
    with pytest.raises(PaymentMismatch, match="out_trade_no"):
        check_payment(PLEDGE, "x" * 32, 5000, "CNY")


def test_only_the_masked_name_travels() -> None:
    assert display_name_for_events("masked", " 王小明 ") == "王**"
    assert display_name_for_events("anonymous", "王小明") is None
    assert display_name_for_events("excluded", "王小明") is None
    assert display_name_for_events("masked", "  ") is None
