from services.contracts import events as ev
from services.ledger.domain.lineage import trace
from services.ledger.domain.view import LedgerView
from tests.fixtures import factories as f
from tests.ledger.domain.test_book import run


def test_disbursements_are_funded_first_in_first_out() -> None:
    d = f.disbursement
    entries = run(
        LedgerView(),
        *f.opened_project("p1"),
        f.confirmed("p1", 1000, 0, donation_id="a"),
        f.confirmed("p1", 2000, 0, donation_id="b"),
        f.offline("p1", 500, record_id="cash-1"),
        f.refunded("p1", "a", 400),
        d(ev.DisbursementRequested, "p1", "x1", "alice", amount_fen=1500),
        d(ev.DisbursementApproved, "p1", "x1", "bob"),
        d(ev.DisbursementRequested, "p1", "x2", "alice", amount_fen=1000),
        d(ev.DisbursementApproved, "p1", "x2", "bob"),
        d(ev.DisbursementRejected, "p1", "x2", "bob"),  # released: its money goes back to the front
        d(ev.DisbursementRequested, "p1", "x3", "alice", amount_fen=200),
        d(ev.DisbursementApproved, "p1", "x3", "bob"),
    )
    lineage = trace(entries)
    slices = {k: [(s.source, s.amount_fen) for s in v] for k, v in lineage.funded_by.items()}
    assert slices == {"x1": [("a", 600), ("b", 900)], "x3": [("b", 200)]}
    assert [(s.source, s.amount_fen) for s in lineage.unspent] == [("b", 900), ("cash-1", 500)]
    assert [(s.source, s.amount_fen) for s in lineage.where_it_went("b")] == [("x1", 900), ("x3", 200)]
