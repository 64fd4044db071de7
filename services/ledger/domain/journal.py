"""Journal entries: one per applied event, with its decision and its postings."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.ledger.domain.money import Money


class UnbalancedEntry(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    amount: Money


# What the ledger did with an event. A rejection is recorded too, so a rebuild
# replays it instead of deciding again against a different history.
POSTED = "posted"
RECORDED = "recorded"  # applied, moved no money
SUSPENSE = "suspense"  # money booked, but not to the project: refund or redirect
REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class JournalEntry:
    entry_id: str  # the event id: applying an event twice is impossible by key
    kind: str  # the event type
    project_id: str
    effective_at: datetime
    decision: str
    reason: str
    body: dict[str, Any]  # what projections need; never personal data
    postings: tuple[Posting, ...] = field(default=())

    def __post_init__(self) -> None:
        check_balanced(self.postings)


def check_balanced(postings: tuple[Posting, ...]) -> None:
    if not postings:
        return  # most entries: every rejection, every step that moves no money
    sums: dict[str, int] = defaultdict(int)
    for p in postings:
        sums[p.amount.currency] += p.amount.minor
    off = {c: s for c, s in sums.items() if s != 0}
    if off:
        raise UnbalancedEntry(f"postings do not sum to zero: {off}")


def transfer(source: str, target: str, amount: Money) -> tuple[Posting, Posting]:
    """Move money from one account to another: the only way postings are made."""
    return Posting(source, -amount), Posting(target, amount)
