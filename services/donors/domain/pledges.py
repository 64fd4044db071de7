"""A pledge: a gift a donor started, before and after the provider says it was paid.

pending ──paid notification──▶ paid ──DonationConfirmed acknowledged──▶ confirmed
   └──timeout, provider says unpaid──▶ failed

The donor store keeps the pledge; these rules decide what a notification or a
timeout may do to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PledgeStatus(StrEnum):
    PENDING = "pending"
    PAID = "paid"  # the provider confirmed; DonationConfirmed not yet acknowledged by the broker
    CONFIRMED = "confirmed"
    FAILED = "failed"


# What the donate form offers, as the events' anonymity modes (docs/donors.md): (zh, en).
DISPLAY_CHOICES = {
    "masked": ("显示我的姓氏（如 王**）", "show my name partly masked"),
    "anonymous": ("匿名（显示为“爱心人士”）", "anonymous"),
    "excluded": ("不在屏幕和名单上显示", "do not list me"),
}


@dataclass(frozen=True)
class Pledge:
    donation_id: str
    out_trade_no: str
    project_id: str
    venue_id: str | None
    channel: str
    amount_fen: int
    currency: str
    anonymity: str
    donor_ref: str
    status: PledgeStatus
    created_at_ms: int
    expires_at_ms: int
    provider: str
    verification_code: str
    provider_charge_id: str | None = None
    paid_at_ms: int | None = None
    fee_fen: int | None = None
    receipt_no: str | None = None
    failure_reason: str | None = None


class PaymentMismatch(ValueError):
    """The provider reports a payment that is not the one pledged."""


def out_trade_no_for(donation_id: str) -> str:
    """Our order number at the provider: the donation id without dashes (32 characters)."""
    return donation_id.replace("-", "")


def check_payment(pledge: Pledge, out_trade_no: str, amount_fen: int, currency: str) -> None:
    """The paid order must be the pledge's, for its amount, in its currency, to the fen."""
    if out_trade_no != pledge.out_trade_no:
        raise PaymentMismatch(f"out_trade_no {out_trade_no!r} is not the pledge's {pledge.out_trade_no!r}")
    if currency != pledge.currency:
        raise PaymentMismatch(f"paid in {currency}, pledged in {pledge.currency}")
    if amount_fen != pledge.amount_fen:
        raise PaymentMismatch(f"paid {amount_fen} fen, pledged {pledge.amount_fen} fen")


def display_name_for_events(anonymity: str, name: str | None) -> str | None:
    """What of the name may travel on the input topics: only what a screen may show.

    The full name stays in the erasable donor store; the events carry the masked
    form ('王**'), which the ledger's masking leaves as it is, or nothing at all.
    """
    if anonymity != "masked" or not name or not name.strip():
        return None
    return name.strip()[0] + "**"
