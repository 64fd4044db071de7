"""The projections the ledger decides with and pages read: plain mutable records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ProjectStatus(StrEnum):
    REGISTERED = "registered"
    APPROVED = "approved"
    FUNDRAISING = "fundraising"
    FUNDRAISING_CLOSED = "fundraising_closed"
    EXECUTING = "executing"
    SUSPENDED = "suspended"
    CLOSED = "closed"


OPEN_STATES = frozenset(
    {
        ProjectStatus.REGISTERED,
        ProjectStatus.APPROVED,
        ProjectStatus.FUNDRAISING,
        ProjectStatus.FUNDRAISING_CLOSED,
        ProjectStatus.EXECUTING,
    }
)


@dataclass(slots=True)
class ProjectTotals:
    """Per-project figures; every amount in fen of the project's currency."""

    project_id: str
    currency: str = "CNY"
    status: str = ProjectStatus.REGISTERED
    plan: dict[str, Any] = field(default_factory=dict)
    goal_fen: int = 0
    gross_fen: int = 0
    fees_fen: int = 0
    net_fen: int = 0
    offline_cash_fen: int = 0
    offline_sales_fen: int = 0
    by_channel: dict[str, int] = field(default_factory=dict)
    donations_count: int = 0
    refunded_fen: int = 0
    held_fen: int = 0
    disbursed_fen: int = 0
    suspense_fen: int = 0
    redirected_in_fen: int = 0  # money redirected here from another project's suspense
    leftover_fen: int = 0
    fund_fen: int = 0  # available: in the fund, not held
    registered_at: datetime | None = None
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    last_disclosure_at: datetime | None = None
    last_entry_seq: int = 0
    # While suspended: the state a resumption returns the project to.
    resumes_to: str | None = None

    @property
    def raised_fen(self) -> int:
        """Everything that reached the project: net online gifts plus offline money."""
        return self.net_fen + self.offline_cash_fen + self.offline_sales_fen + self.redirected_in_fen


@dataclass(slots=True)
class DonationRecord:
    donation_id: str
    project_id: str
    currency: str
    gross_fen: int
    fee_fen: int
    refunded_fen: int = 0
    to_suspense: bool = False
    donor_ref: str | None = None

    @property
    def refundable_fen(self) -> int:
        return self.gross_fen - self.refunded_fen


class DisbursementStatus(StrEnum):
    REQUESTED = "requested"
    HELD = "held"  # approved: funds reserved
    PAID = "paid"
    REJECTED = "rejected"


@dataclass(slots=True)
class DisbursementRecord:
    disbursement_id: str
    project_id: str
    currency: str
    amount_fen: int
    requested_by: str
    payee: str
    status: str = DisbursementStatus.REQUESTED
    approvers: list[str] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)  # document SHA-256s


class ResolutionStatus(StrEnum):
    REQUESTED = "requested"
    APPLIED = "applied"  # approved by a second person: the money moved
    REJECTED = "rejected"


@dataclass(slots=True)
class SuspenseResolution:
    """A request to move money out of a project's suspense, and what became of it."""

    resolution_id: str
    project_id: str  # whose suspense account
    action: str  # redirect | refund
    currency: str
    amount_fen: int
    requested_by: str
    target_project_id: str | None = None
    donation_id: str | None = None
    status: str = ResolutionStatus.REQUESTED
    approved_by: str | None = None
