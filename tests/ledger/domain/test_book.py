"""The ledger's rules, on the pure domain: no Kafka, no database."""

import dataclasses
from collections import defaultdict
from datetime import UTC, datetime

import orjson

from services.contracts import events as ev
from services.ledger.domain import journal as j
from services.ledger.domain.book import Policy, decide
from services.ledger.domain.chain import GENESIS_HASH, canonical_bytes, entry_record, hashes_of
from services.ledger.domain.journal import JournalEntry
from services.ledger.domain.projector import apply_entry
from services.ledger.domain.view import LedgerView
from tests.fixtures import factories as f


def run(view: LedgerView, *events: ev.Event, policy: Policy | None = None) -> list[JournalEntry]:
    entries = []
    for event in events:
        entry = decide(event, view, policy or Policy())
        apply_entry(entry, view)
        entries.append(entry)
    return entries


def balances(entries: list[JournalEntry]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for e in entries:
        for p in e.postings:
            out[p.account] += p.amount.minor
    return dict(out)


def test_a_confirmed_donation_books_gross_fee_and_net() -> None:
    view = LedgerView()
    entries = run(view, *f.opened_project("p1"), f.confirmed("p1", gross_fen=5000, fee_fen=30))
    gift = entries[-1]
    assert gift.decision == j.POSTED
    assert balances([gift]) == {"clearing:sandbox": -5000, "fees:sandbox": 30, "project:p1:fund": 4970}
    totals = view.projects["p1"]
    assert (totals.gross_fen, totals.fees_fen, totals.net_fen, totals.fund_fen) == (5000, 30, 4970, 4970)
    assert totals.donations_count == 1 and totals.by_channel == {"web": 5000}


def test_personal_data_never_enters_the_journal_body() -> None:
    gift = run(
        LedgerView(), *f.opened_project("p1"), f.confirmed("p1", display_name="王小明", message="加油")
    )[-1]
    assert "display_name" not in gift.body and "message" not in gift.body


# A gift as a v1 writer sent it, before receipt numbers existed; every id and
# time fixed, so its journal entry can be compared byte for byte.
OLD_STYLE_GIFT = ev.DonationConfirmed(
    event_id="0f3c2a4e-9a1b-4c7d-8e2f-5a6b7c8d9e0f",
    occurred_at=datetime(2026, 3, 1, 8, 30, 0, 123000, tzinfo=UTC),
    actor="sandbox",
    project_id="p1",
    donation_id="d-golden",
    provider="sandbox",
    provider_charge_id="ch-golden",
    gross_fen=5000,
    fee_fen=30,
    currency="CNY",
    channel="qr",
    venue_id="botanic-garden",
    anonymity="masked",
    display_name="王小明",
    message="加油",
    donor_ref="donor-7",
)
# Its canonical entry and (chain, leaf) hashes, as the ledger wrote them before
# DonationConfirmed v2 added receipt_no: stored journals hold exactly these bytes.
OLD_STYLE_CANONICAL = (
    b'{"body":{"actor":"sandbox","anonymity":"masked","channel":"qr","currency":"CNY",'
    b'"donation_id":"d-golden","donor_ref":"donor-7","fee_fen":30,"gross_fen":5000,'
    b'"provider":"sandbox","provider_charge_id":"ch-golden","venue_id":"botanic-garden"},'
    b'"decision":"posted","effective_at":"2026-03-01T08:30:00.123Z",'
    b'"entry_id":"0f3c2a4e-9a1b-4c7d-8e2f-5a6b7c8d9e0f","kind":"DonationConfirmed",'
    b'"postings":[["clearing:sandbox","CNY",-30],["fees:sandbox","CNY",30],'
    b'["clearing:sandbox","CNY",-4970],["project:p1:fund","CNY",4970]],'
    b'"project_id":"p1","reason":"","recorded_at":"2026-03-01T08:30:01.000Z","seq":42}'
)
OLD_STYLE_HASHES = (
    "9ab04540bb3bce207720d6be8f11dafa81c9f90f21fce74f9ec493473fb224f8",
    "93c684a9b25b1d8d615b742bf452d76be0a23d9db407b6f458e0d58b0f93a646",
)


def _gift_entry_bytes(gift: ev.DonationConfirmed) -> bytes:
    entry = run(LedgerView(), *f.opened_project("p1"), gift)[-1]
    return canonical_bytes(entry_record(42, entry, "2026-03-01T08:30:01.000Z"))


def test_a_gift_without_a_receipt_number_hashes_as_it_did_before_receipt_numbers() -> None:
    # No "receipt_no": null in the body: existing journals must verify and rebuild unchanged.
    assert OLD_STYLE_GIFT.receipt_no is None
    canonical = _gift_entry_bytes(OLD_STYLE_GIFT)
    assert canonical == OLD_STYLE_CANONICAL
    assert hashes_of(GENESIS_HASH, canonical) == OLD_STYLE_HASHES


def test_a_receipt_number_is_bound_into_the_gifts_journal_entry() -> None:
    numbered = dataclasses.replace(OLD_STYLE_GIFT, receipt_no="SIP-2026-0001234")
    body = orjson.loads(_gift_entry_bytes(numbered))["body"]
    assert body == {**orjson.loads(OLD_STYLE_CANONICAL)["body"], "receipt_no": "SIP-2026-0001234"}


def test_money_for_a_project_that_is_not_fundraising_goes_to_suspense() -> None:
    view = LedgerView()
    entries = run(
        view, f.registered("p1"), f.confirmed("p1", gross_fen=1000, fee_fen=0), f.confirmed("ghost", 700, 0)
    )
    assert entries[1].decision == j.SUSPENSE and "not fundraising" in entries[1].reason
    assert entries[2].decision == j.SUSPENSE and "unknown project ghost" in entries[2].reason
    assert balances(entries) == {"clearing:sandbox": -1700, "suspense:p1": 1000, "suspense:ghost": 700}
    assert view.projects["p1"].suspense_fen == 1000 and view.projects["p1"].fund_fen == 0


def test_the_same_donation_confirmed_twice_is_rejected_the_second_time() -> None:
    view = LedgerView()
    entries = run(
        view,
        *f.opened_project("p1"),
        f.confirmed("p1", donation_id="d1"),
        f.confirmed("p1", donation_id="d1"),
    )
    assert entries[-1].decision == j.REJECTED and "already confirmed" in entries[-1].reason
    assert view.projects["p1"].donations_count == 1


def test_offline_money_is_kept_apart_by_kind() -> None:
    view = LedgerView()
    entries = run(
        view,
        *f.opened_project("p1"),
        f.offline("p1", 300, "cash_box"),
        f.offline("p1", 200, "charity_sale", item="绿植"),
    )
    assert balances(entries[-2:]) == {
        "cash:botanic-garden:box": -300,
        "cash:botanic-garden:sales": -200,
        "project:p1:fund": 500,
    }
    p = view.projects["p1"]
    assert (p.offline_cash_fen, p.offline_sales_fen, p.raised_fen) == (300, 200, 500)


def test_refunds_never_exceed_what_was_given() -> None:
    view = LedgerView()
    entries = run(
        view,
        *f.opened_project("p1"),
        f.confirmed("p1", 1000, 0, donation_id="d1"),
        f.refunded("p1", "d1", 600),
        f.refunded("p1", "d1", 600),
        f.refunded("p1", "d2", 1),
    )
    assert [e.decision for e in entries[-3:]] == [j.POSTED, j.REJECTED, j.REJECTED]
    assert "exceeds the 400 fen still refundable" in entries[-2].reason
    assert view.projects["p1"].refunded_fen == 600 and view.projects["p1"].fund_fen == 400


def test_illegal_lifecycle_transitions_are_recorded_as_rejected() -> None:
    view = LedgerView()
    entries = run(view, f.registered("p1"), f.lifecycle(ev.FundraisingOpened, "p1"))
    assert entries[-1].decision == j.REJECTED and "not allowed in state registered" in entries[-1].reason
    assert view.projects["p1"].status == "registered"


def test_disbursements_need_an_independent_approver_and_funds() -> None:
    view = LedgerView()
    d = f.disbursement
    entries = run(
        view,
        *f.opened_project("p1"),
        f.confirmed("p1", 5000, 0),
        d(ev.DisbursementRequested, "p1", "x1", "alice", amount_fen=3000),
        d(ev.DisbursementApproved, "p1", "x1", "alice"),  # self-approval
        d(ev.DisbursementApproved, "p1", "x1", "bob"),
        d(ev.DisbursementRequested, "p1", "x2", "alice", amount_fen=3000),
        d(ev.DisbursementApproved, "p1", "x2", "bob"),  # only 2000 left
        d(ev.DisbursementPaid, "p1", "x1", "treasurer"),
        d(ev.EvidenceAttached, "p1", "x1", "alice"),
    )
    decisions = [(e.decision, e.reason) for e in entries[4:]]
    assert decisions[0] == (j.RECORDED, "")
    assert decisions[1][0] == j.REJECTED and "own request" in decisions[1][1]
    assert decisions[2] == (j.POSTED, "")
    assert (
        decisions[4][0] == j.REJECTED and "available balance 2000 fen does not cover 3000" in decisions[4][1]
    )
    assert decisions[5] == (j.POSTED, "")
    p = view.projects["p1"]
    assert (p.fund_fen, p.held_fen, p.disbursed_fen) == (2000, 0, 3000)
    assert view.disbursements["x1"].evidence == ["a" * 64]


def test_large_disbursements_need_two_approvers() -> None:
    view = LedgerView()
    d = f.disbursement
    policy = Policy(dual_approval_threshold_fen=1000)
    entries = run(
        view,
        *f.opened_project("p1"),
        f.confirmed("p1", 5000, 0),
        d(ev.DisbursementRequested, "p1", "x1", "alice", amount_fen=2000),
        d(ev.DisbursementApproved, "p1", "x1", "bob"),
        d(ev.DisbursementApproved, "p1", "x1", "bob"),
        d(ev.DisbursementApproved, "p1", "x1", "carol"),
        policy=policy,
    )
    assert [e.decision for e in entries[-3:]] == [j.RECORDED, j.REJECTED, j.POSTED]
    assert view.projects["p1"].held_fen == 2000


def test_closing_moves_the_leftover_and_needs_no_open_holds() -> None:
    view = LedgerView()
    entries = run(
        view,
        *f.opened_project("p1"),
        f.confirmed("p1", 5000, 0),
        f.lifecycle(ev.FundraisingClosed, "p1"),
        f.lifecycle(ev.ProjectClosed, "p1"),  # disposition 'none' with money left
        f.lifecycle(ev.ProjectClosed, "p1", leftover_disposition="return_to_donors"),
    )
    assert entries[-2].decision == j.REJECTED and "5000 fen is left over" in entries[-2].reason
    assert entries[-1].decision == j.POSTED
    p = view.projects["p1"]
    assert (p.status, p.fund_fen, p.leftover_fen) == ("closed", 0, 5000)
    # money in = money out + balance
    assert p.raised_fen == p.disbursed_fen + p.refunded_fen + p.leftover_fen + p.fund_fen + p.held_fen


def test_every_entry_balances() -> None:
    view = LedgerView()
    entries = run(view, *f.opened_project("p1"), *(f.confirmed("p1", 100 + i, i) for i in range(20)))
    for e in entries:
        assert sum(p.amount.minor for p in e.postings) == 0
