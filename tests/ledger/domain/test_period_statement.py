"""The statement's rules on hand-made journal entries, without a database: what counts as in and
out, what only moves money between the fund and held, rejected entries, the period's edges."""

from __future__ import annotations

from datetime import UTC, datetime

from services.ledger.domain import accounts as acc
from services.ledger.domain import journal as j
from services.ledger.domain.journal import JournalEntry, transfer
from services.ledger.domain.money import Money
from services.ledger.domain.statements import project_statement

FUND, HELD = acc.project_fund("p"), acc.project_held("p")
START, END = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)


def entry(
    event: str, day: datetime, source: str, target: str, fen: int, decision: str = j.POSTED, **body: object
) -> JournalEntry:
    return JournalEntry(
        entry_id=f"{event}-{day.isoformat()}-{fen}",
        kind=event,
        project_id="p",
        effective_at=day,
        decision=decision,
        reason="",
        body=dict(body),
        postings=transfer(source, target, Money(fen, "CNY")) if decision != j.REJECTED else (),
    )


def test_holds_are_neither_in_nor_out_and_the_edges_belong_to_one_period() -> None:
    entries = [
        entry(
            "OfflineDonationRecorded",
            datetime(2026, 2, 28, 23, 59, tzinfo=UTC),
            "cash:v:box",
            FUND,
            1_000,
            kind="cash_box",
        ),
        entry("OfflineDonationRecorded", START, "cash:v:sales", FUND, 500, kind="charity_sale"),
        entry("DisbursementApproved", datetime(2026, 3, 2, tzinfo=UTC), FUND, HELD, 700),
        entry("DisbursementRejected", datetime(2026, 3, 3, tzinfo=UTC), HELD, FUND, 700),
        entry("DisbursementApproved", datetime(2026, 3, 4, tzinfo=UTC), FUND, HELD, 600),
        entry(
            "DonationRefunded",
            datetime(2026, 3, 5, tzinfo=UTC),
            FUND,
            acc.REFUNDS,
            9_999,
            decision=j.REJECTED,
        ),
        entry("SomethingNew", datetime(2026, 3, 6, tzinfo=UTC), "elsewhere", FUND, 42),
        entry("OfflineDonationRecorded", END, "cash:v:box", FUND, 300, kind="cash_box"),
    ]
    s = project_statement("p", "CNY", list(enumerate(entries, 1)), START, END)
    assert s.opening_fen == 1_000
    assert {k: v for k, v in s.money_in.items() if v} == {"charity_sale": 500, "other_in": 42}
    assert s.total_out_fen == 0
    assert (s.closing_fen, s.closing_held_fen) == (1_542, 600)
    assert s.reconciles and [m.seq for m in s.movements] == [2, 7]
    assert s.last_seq == 8
