"""The chart of accounts, as names.

Postings follow the flow convention of TigerBeetle-style transfers: a positive
amount flows into an account, a negative one out of it, and every transaction
sums to zero per currency. Accounts that stand for the outside world (a
provider's clearing account, a venue's cash box) therefore run negative: their
balance is how much came in through them. Project accounts must never go
negative.
"""

from __future__ import annotations


def project_fund(project_id: str) -> str:
    """Restricted money available to the project (Charity Law Art. 54)."""
    return f"project:{project_id}:fund"


def project_held(project_id: str) -> str:
    """Money reserved by an approved disbursement until it is paid or released."""
    return f"project:{project_id}:held"


def clearing(provider: str) -> str:
    return f"clearing:{provider}"


def fees(provider: str) -> str:
    return f"fees:{provider}"


def cash_box(venue_id: str) -> str:
    return f"cash:{venue_id}:box"


def charity_sales(venue_id: str) -> str:
    return f"cash:{venue_id}:sales"


def suspense(project_id: str) -> str:
    """Money that arrived for a project that could not take it: to refund or redirect."""
    return f"suspense:{project_id}"


PAYOUT = "payout"
REFUNDS = "refunds"
