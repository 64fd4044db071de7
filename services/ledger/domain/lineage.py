"""Fund lineage: which gifts paid for which disbursement, first in, first out.

Money is fungible, so lineage is a convention; FIFO is the one donors expect
("the oldest gifts are spent first") and it is deterministic. A disbursement
claims money when its hold is placed (approval), gives it back at the front of
the queue if the hold is released, and a refund takes back what is left of
its own gift.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.ledger.domain import journal as j
from services.ledger.domain.journal import JournalEntry


@dataclass
class Slice:
    source: str  # a donation id or an offline record id
    amount_fen: int


@dataclass
class Lineage:
    funded_by: dict[str, list[Slice]] = field(default_factory=dict)  # disbursement -> gifts
    unspent: list[Slice] = field(default_factory=list)

    def where_it_went(self, source: str) -> list[Slice]:
        """For one gift: the disbursements it paid for (Slice.source is the disbursement id)."""
        out = []
        for disbursement_id, slices in self.funded_by.items():
            total = sum(s.amount_fen for s in slices if s.source == source)
            if total:
                out.append(Slice(disbursement_id, total))
        return out


def trace(entries: Iterable[JournalEntry]) -> Lineage:
    """Entries of ONE project, in journal order."""
    queue: deque[Slice] = deque()
    lineage = Lineage()
    for e in entries:
        if e.decision != j.POSTED:
            continue
        b = e.body
        if e.kind == "DonationConfirmed":
            queue.append(Slice(b["donation_id"], b["gross_fen"] - b["fee_fen"]))
        elif e.kind == "OfflineDonationRecorded":
            queue.append(Slice(b["record_id"], b["amount_fen"]))
        elif e.kind == "DonationRefunded":
            _take_back(queue, b["donation_id"], b["amount_fen"])
        elif e.kind == "DisbursementApproved" and b.get("held"):
            amount = sum(p.amount.minor for p in e.postings if p.amount.minor > 0)
            lineage.funded_by[b["disbursement_id"]] = _claim(queue, amount)
        elif e.kind == "DisbursementRejected":  # a released hold
            for s in reversed(lineage.funded_by.pop(b["disbursement_id"], [])):
                if queue and queue[0].source == s.source:
                    queue[0].amount_fen += s.amount_fen  # the rest of the same gift: one slice again
                else:
                    queue.appendleft(Slice(s.source, s.amount_fen))
    lineage.unspent = list(queue)
    return lineage


def _claim(queue: deque[Slice], amount: int) -> list[Slice]:
    taken: list[Slice] = []
    while amount > 0 and queue:
        head = queue[0]
        part = min(head.amount_fen, amount)
        taken.append(Slice(head.source, part))
        head.amount_fen -= part
        amount -= part
        if head.amount_fen == 0:
            queue.popleft()
    return taken


def _take_back(queue: deque[Slice], source: str, amount: int) -> None:
    for s in queue:
        if s.source == source and amount > 0:
            part = min(s.amount_fen, amount)
            s.amount_fen -= part
            amount -= part
    for s in [s for s in queue if s.amount_fen == 0]:
        queue.remove(s)
