"""A project's statement for a period: opening balance, money in by kind, refunds, money out,
closing balance, and whether they reconcile, from the journal's entries alone.

The balance is the money in the project's care: its fund and what approved disbursements
hold (`project:<id>:fund` + `project:<id>:held`). Moving money between those two changes
nothing here; every other posting to them is a flow, named by the entry that made it.
An entry counts in the period its effective time falls in (start inclusive, end exclusive),
so a correction booked later with an earlier effective time changes that earlier period,
as `balances_as_of` does.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from services.ledger.domain import accounts as acc
from services.ledger.domain import journal as j
from services.ledger.domain.journal import JournalEntry

# Money in, by kind (the order statements list them in).
IN_KINDS = ("online_web", "online_qr", "cash_box", "charity_sale", "redirected_in", "other_in")
# Money out, by kind.
OUT_KINDS = ("refunds", "disbursed", "leftover", "other_out")


@dataclass(frozen=True)
class Movement:
    """One entry's change to the project's balance, and what it was."""

    seq: int
    entry_id: str
    kind: str  # one of IN_KINDS or OUT_KINDS
    event: str  # the journal entry's kind
    effective_at: datetime
    amount_fen: int  # positive in, negative out
    detail: str = ""  # payee and purpose, a channel or venue, a refund's reason


@dataclass
class ProjectStatement:
    project_id: str
    currency: str
    start: datetime
    end: datetime  # exclusive
    opening_fen: int = 0
    money_in: dict[str, int] = field(default_factory=lambda: dict.fromkeys(IN_KINDS, 0))
    money_out: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUT_KINDS, 0))
    # Online gifts reach the fund net of the provider's fee: what donors paid, and the fees.
    gross_online_fen: int = 0
    fees_fen: int = 0
    closing_fen: int = 0
    closing_held_fen: int = 0  # of the closing balance, what approved disbursements hold
    movements: list[Movement] = field(default_factory=list)
    last_seq: int = 0  # the journal sequence the statement was read at
    # The two accounts' balance at the end as the database sums the postings table on its own,
    # at the same seq (None: not read). The lines and the closing balance come from the hashed
    # entries, so a leg changed behind the ledger's back shows as a statement that does not
    # reconcile.
    booked_fen: int | None = None

    @property
    def total_in_fen(self) -> int:
        return sum(self.money_in.values())

    @property
    def total_out_fen(self) -> int:
        return sum(self.money_out.values())

    @property
    def reconciles(self) -> bool:
        """Opening + in - out = closing, to the fen, and closing equals the accounts' balance
        the database sums from the postings table (when it was read)."""
        lines = self.opening_fen + self.total_in_fen - self.total_out_fen == self.closing_fen
        return lines and self.booked_fen in (None, self.closing_fen)

    @property
    def disbursed_by_payee(self) -> list[tuple[str, int]]:
        by: dict[str, int] = defaultdict(int)
        for m in self.movements:
            if m.kind == "disbursed":
                by[m.detail] -= m.amount_fen
        return sorted(by.items(), key=lambda item: -item[1])


def _change(entry: JournalEntry, accounts: tuple[str, str]) -> tuple[int, int]:
    """The entry's change to the fund and held accounts together, and to held alone."""
    total = held = 0
    for posting in entry.postings:
        if posting.account in accounts:
            total += posting.amount.minor
            if posting.account == accounts[1]:
                held += posting.amount.minor
    return total, held


def _kind(entry: JournalEntry, amount: int) -> str:
    body = entry.body
    if entry.kind == "DonationConfirmed":
        return "online_qr" if body.get("channel") == "qr" else "online_web"
    if entry.kind == "OfflineDonationRecorded":
        return "charity_sale" if body.get("kind") == "charity_sale" else "cash_box"
    if entry.kind == "SuspenseResolutionApproved" and amount > 0:
        return "redirected_in"
    if entry.kind == "DonationRefunded":
        return "refunds"
    if entry.kind == "DisbursementPaid":
        return "disbursed"
    if entry.kind == "ProjectClosed":
        return "leftover"
    return "other_in" if amount > 0 else "other_out"


def _detail(entry: JournalEntry, requests: dict[str, dict[str, str]]) -> str:
    body = entry.body
    if entry.kind == "DisbursementPaid":
        asked = requests.get(str(body.get("disbursement_id")), {})
        return f"{asked.get('payee', '')} · {asked.get('purpose', '')}".strip(" ·")
    if entry.kind in ("DonationConfirmed", "OfflineDonationRecorded"):
        return str(body.get("venue_id") or "")
    if entry.kind == "ProjectClosed":
        return str(body.get("leftover_disposition", ""))
    return str(body.get("reason") or "")


def project_statement(
    project_id: str,
    currency: str,
    entries: Iterable[tuple[int, JournalEntry]],
    start: datetime,
    end: datetime,
) -> ProjectStatement:
    """The statement of [start, end) from (seq, entry) pairs in journal order: every entry that
    touched the project's accounts up to `end` (others, and rejected ones, change nothing)."""
    accounts = (acc.project_fund(project_id), acc.project_held(project_id))
    statement = ProjectStatement(project_id, currency, start, end)
    requests: dict[str, dict[str, str]] = {}
    for seq, entry in entries:
        statement.last_seq = max(statement.last_seq, seq)
        if entry.kind == "DisbursementRequested" and entry.decision != j.REJECTED:
            requests[str(entry.body.get("disbursement_id"))] = {
                "payee": str(entry.body.get("payee", "")),
                "purpose": str(entry.body.get("purpose", "")),
            }
        if entry.decision == j.REJECTED or entry.effective_at >= end:
            continue
        amount, held = _change(entry, accounts)
        if entry.effective_at < start:
            statement.opening_fen += amount
            statement.closing_fen += amount
            statement.closing_held_fen += held
            continue
        statement.closing_fen += amount
        statement.closing_held_fen += held
        if amount == 0:
            continue  # between fund and held (a hold, or its release), or no money of this project
        kind = _kind(entry, amount)
        if kind in statement.money_in:
            statement.money_in[kind] += amount
        else:
            statement.money_out[kind] -= amount
        if entry.kind == "DonationConfirmed":
            statement.gross_online_fen += int(entry.body.get("gross_fen", 0))
            statement.fees_fen += int(entry.body.get("fee_fen", 0))
        statement.movements.append(
            Movement(
                seq, entry.entry_id, kind, entry.kind, entry.effective_at, amount, _detail(entry, requests)
            )
        )
    return statement
