"""The slice of ledger state one batch works on, and what the batch changed.

The store fills it before a batch (every project, plus the donations and
disbursements the batch's events refer to) and writes back what is dirty.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.ledger.domain.state import (
    DisbursementRecord,
    DonationRecord,
    ProjectTotals,
    SuspenseResolution,
)


@dataclass
class LedgerView:
    projects: dict[str, ProjectTotals] = field(default_factory=dict)
    donations: dict[str, DonationRecord] = field(default_factory=dict)
    disbursements: dict[str, DisbursementRecord] = field(default_factory=dict)
    resolutions: dict[str, SuspenseResolution] = field(default_factory=dict)
    dirty_projects: set[str] = field(default_factory=set)
    dirty_donations: set[str] = field(default_factory=set)
    dirty_disbursements: set[str] = field(default_factory=set)
    dirty_resolutions: set[str] = field(default_factory=set)

    def clear_dirty(self) -> None:
        self.dirty_projects.clear()
        self.dirty_donations.clear()
        self.dirty_disbursements.clear()
        self.dirty_resolutions.clear()
