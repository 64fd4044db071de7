"""The read side's gift queries, over a journal the real processor wrote, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.adapters.signing import load_or_create_signing_key
from services.ledger.adapters.store import LedgerStore
from services.ledger.adapters.tree_heads import TreeHeadSigner
from services.ledger.domain.chain import iso_ms
from services.ledger.domain.merkle import leaf_hash
from services.ledger.read import LedgerQueries, Transparency
from services.ledger.service.processor import BatchProcessor
from services.verifier.receipt import verify_receipt
from tests.fixtures import factories as f
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.ops.test_verify_and_rebuild import feed

pytestmark = pytest.mark.integration  # the store runs on the PostgreSQL server too

D = f.disbursement
EVIDENCE = ["1" * 64, "2" * 64]


@dataclasses.dataclass
class History:
    queries: LedgerQueries
    gifts: dict[str, ev.DonationConfirmed]
    steps: dict[str, ev.Event]


@pytest.fixture
def history(store: LedgerStore) -> History:
    """Three gifts (two numbered), a second confirmation of one, a refund; a paid
    disbursement with evidence, a held one, and a released one."""
    gifts = {
        "a": f.confirmed("p1", 1000, 0, donation_id="a", receipt_no="SIP-2026-0000001"),
        "b": f.confirmed("p1", 3000, 30, donation_id="b", receipt_no="SIP-2026-0000002"),
        "c": f.confirmed("p1", 400, 0, donation_id="c"),  # as gifts were before receipt numbers
    }
    steps: dict[str, ev.Event] = {
        "x1 requested": D(ev.DisbursementRequested, "p1", "x1", "alice", amount_fen=1500, purpose="冬季餐费"),
        "x1 approved": D(ev.DisbursementApproved, "p1", "x1", "bob"),
        "x1 paid": D(ev.DisbursementPaid, "p1", "x1", "treasurer"),
        "x1 invoice": D(ev.EvidenceAttached, "p1", "x1", "alice", document_sha256=EVIDENCE[0]),
        "x1 photo": D(ev.EvidenceAttached, "p1", "x1", "alice", document_sha256=EVIDENCE[1]),
        "x2 requested": D(ev.DisbursementRequested, "p1", "x2", "alice", amount_fen=500, payee="米店"),
        "x2 approved": D(ev.DisbursementApproved, "p1", "x2", "bob"),
        "x3 requested": D(ev.DisbursementRequested, "p1", "x3", "alice", amount_fen=100),
        "x3 approved": D(ev.DisbursementApproved, "p1", "x3", "bob"),
        "x3 released": D(ev.DisbursementRejected, "p1", "x3", "carol"),
    }
    processor = BatchProcessor(store, RecordingOutput(), Topics(""), "g")
    batches: list[list[ev.Event]] = [
        f.opened_project("p1"),
        [*gifts.values(), f.confirmed("p1", 3000, 30, donation_id="b"), f.refunded("p1", "a", 200)],
        list(steps.values()),
    ]
    start = 0
    for batch in batches:  # one batch per topic, so their order is the order above
        feed(processor, batch, start=start)
        start += len(batch)
    return History(LedgerQueries(store.engine), gifts, steps)


def test_a_gift_is_read_from_the_entry_that_booked_it(history: History) -> None:
    a, b = history.gifts["a"], history.gifts["b"]
    found = history.queries.gift("a")
    assert found is not None
    seq = found.pop("seq")
    assert found == {
        "donation_id": "a",
        "project_id": "p1",
        "currency": "CNY",
        "gross_fen": 1000,
        "fee_fen": 0,
        "refunded_fen": 200,
        "receipt_no": "SIP-2026-0000001",
        "entry_id": a.event_id,
        "effective_at": iso_ms(a.occurred_at),
        "recorded_at": found["recorded_at"],
        "decision": "posted",
        "reason": "",
    }
    entry = history.queries.entry(a.event_id)
    assert entry is not None and entry["seq"] == seq
    # b was confirmed twice: the second confirmation is a rejected entry that booked nothing.
    second = history.queries.gift("b")
    assert second is not None
    assert (second["entry_id"], second["receipt_no"], second["fee_fen"]) == (
        b.event_id,
        "SIP-2026-0000002",
        30,
    )


def test_a_gift_from_before_receipt_numbers_has_none(history: History) -> None:
    old = history.queries.gift("c")
    assert old is not None and old["receipt_no"] is None and old["gross_fen"] == 400
    entry = history.queries.entry(history.gifts["c"].event_id)
    assert entry is not None and "receipt_no" not in entry["body"]


def test_no_gift_for_an_unknown_id(history: History) -> None:
    assert history.queries.gift("nope") is None
    assert history.queries.gift_uses("nope") == []


def test_a_gift_is_traced_first_in_first_out_to_what_it_paid_for(history: History) -> None:
    s = history.steps
    x1 = {
        "disbursement_id": "x1",
        "purpose": "冬季餐费",
        "payee": "助餐点",
        "currency": "CNY",
        "disbursement_amount_fen": 1500,
        "status": "paid",
        "requested_at": iso_ms(s["x1 requested"].occurred_at),
        "approved_at": iso_ms(s["x1 approved"].occurred_at),
        "paid_at": iso_ms(s["x1 paid"].occurred_at),
        "evidence_sha256": EVIDENCE,
    }
    # a's 1000 less its 200 refund went first; b (net 2970) made up the rest of x1.
    assert history.queries.gift_uses("a") == [{**x1, "amount_fen": 800}]
    assert history.queries.gift_uses("b") == [
        {**x1, "amount_fen": 700},
        {
            "disbursement_id": "x2",
            "purpose": "餐费",
            "payee": "米店",
            "currency": "CNY",
            "amount_fen": 500,
            "disbursement_amount_fen": 500,
            "status": "held",
            "requested_at": iso_ms(s["x2 requested"].occurred_at),
            "approved_at": iso_ms(s["x2 approved"].occurred_at),
            "paid_at": None,
            "evidence_sha256": [],
        },
    ]
    # x3's hold was released, so its money went back to b; c is not spent yet.
    assert history.queries.gift_uses("c") == []


def test_the_donation_view_names_the_entry_that_booked_the_gift(history: History) -> None:
    found = history.queries.donation("b")
    assert found is not None and found["entry_id"] == history.gifts["b"].event_id


def test_a_gifts_receipt_proves_its_receipt_number(history: History, tmp_path: Path) -> None:
    engine = history.queries.engine
    key = load_or_create_signing_key(tmp_path / "key.pem")
    assert TreeHeadSigner(engine, key, RecordingOutput(), Topics("")).publish_if_grown() is not None
    transparency = Transparency(engine)
    gift = history.queries.gift("a")
    assert gift is not None
    receipt = transparency.receipt(gift["entry_id"])
    pem = transparency.current_public_key()
    assert receipt is not None and pem is not None
    assert receipt["entry"]["body"]["receipt_no"] == "SIP-2026-0000001"
    # The hashed text travels with the entry, for browsers that cannot re-serialise it.
    assert json.loads(receipt["canonical"]) == receipt["entry"]
    assert leaf_hash(receipt["canonical"].encode()).hex() == receipt["leaf_hash"]
    assert verify_receipt(receipt, receipt["tree_head"], pem).ok
    renumbered = {**receipt, "entry": {**receipt["entry"], "body": {**receipt["entry"]["body"]}}}
    renumbered["entry"]["body"]["receipt_no"] = "SIP-2026-0000009"
    del renumbered["canonical"]
    assert not verify_receipt(renumbered, receipt["tree_head"], pem).ok


def test_balances_as_of_an_instant_in_any_zone_are_those_of_the_same_moment(history: History) -> None:
    # SQLite keeps times as UTC text: an instant in another zone is compared as the same moment.
    first, last = history.gifts["a"].occurred_at, datetime.now(UTC)  # every event occurred between
    beijing, california = timezone(timedelta(hours=8)), timezone(timedelta(hours=-8))
    everything = history.queries.balances_as_of("p1", datetime(2100, 1, 1, tzinfo=UTC))
    now = history.queries.project("p1")
    assert now is not None and now.held_fen == 500
    assert everything == {"available_fen": now.fund_fen, "held_fen": now.held_fen}
    before = (first - timedelta(milliseconds=1)).astimezone(beijing)
    assert history.queries.balances_as_of("p1", before) == {"available_fen": 0, "held_fen": 0}
    assert history.queries.balances_as_of("p1", last.astimezone(california)) == everything
