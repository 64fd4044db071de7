"""The batch processor's outputs, with the real store on SQLite and a recording output port."""

from __future__ import annotations

from pathlib import Path

from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.adapters.db import make_engine
from services.ledger.adapters.store import LedgerStore
from services.ledger.service.processor import BatchProcessor
from tests.fixtures import factories as f
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.ops.test_verify_and_rebuild import feed


def processor(tmp_path: Path) -> tuple[BatchProcessor, RecordingOutput]:
    store = LedgerStore(make_engine(f"sqlite:///{tmp_path / 'l.db'}"))
    store.migrate()
    out = RecordingOutput()
    return BatchProcessor(store, out, Topics(""), "g"), out


def test_feed_items_carry_masked_names_and_messages_but_never_excluded_gifts(tmp_path: Path) -> None:
    p, out = processor(tmp_path)
    feed(
        p,
        [
            *f.opened_project("p1"),
            f.confirmed("p1", 5000, 0, anonymity="masked", display_name="王小明", message="加油"),
            f.confirmed("p1", 100, 0, anonymity="excluded", display_name="李娜"),
            f.confirmed("p1", 200, 0, anonymity="anonymous", display_name="张伟"),
            f.offline("p1", 300, "charity_sale", item="绿植"),
        ],
    )
    items = [e for e in out.events("charity.ledger.feed") if isinstance(e, ev.DonationFeedItem)]
    assert [(i.shown_name, i.amount_fen, i.kind, i.message) for i in items] == [
        ("王**", 5000, "gift", "加油"),
        ("爱心人士", 200, "gift", None),
        ("", 300, "charity_sale", None),
    ]
    assert all("李娜" not in str(i) and "张伟" not in str(i) for i in items)


def test_every_decision_is_published_and_totals_follow_each_batch(tmp_path: Path) -> None:
    p, out = processor(tmp_path)
    feed(p, [*f.opened_project("p1"), f.lifecycle(ev.FundraisingOpened, "p1"), f.confirmed("p1", 5000, 30)])
    outcomes = [e for e in out.events("charity.ledger.outcomes") if isinstance(e, ev.LedgerOutcome)]
    assert [(o.kind, o.decision) for o in outcomes] == [
        ("ProjectRegistered", "recorded"),
        ("ProjectApproved", "recorded"),
        ("FundraisingOpened", "recorded"),
        ("FundraisingOpened", "rejected"),
        ("DonationConfirmed", "posted"),
    ]
    assert "not allowed in state fundraising" in outcomes[3].reason
    totals = [e for e in out.events("charity.ledger.totals") if isinstance(e, ev.TotalsUpdated)]
    assert totals[-1].raised_fen == 4970 and totals[-1].as_of_seq == 5


def test_dead_letters_name_the_reason_and_the_source(tmp_path: Path) -> None:
    from services.ledger.service.ports import RawRecord

    p, out = processor(tmp_path)
    result = p.process([RawRecord("charity.donations", 2, 41, b"k", b"not avro at all")])
    assert result.dead_letters == 1 and result.applied == 0
    ((key, value, headers),) = out.sent["charity.dlq"]
    h = dict(headers)
    assert value == b"not avro at all" and key == b"k"
    assert h["error-kind"] == b"undecodable" and b"bad magic" in h["reason"]
    assert (h["source-topic"], h["source-partition"], h["source-offset"]) == (
        b"charity.donations",
        b"2",
        b"41",
    )
    assert p.store.stored_offsets("g", [("charity.donations", 2)]) == {("charity.donations", 2): 42}
