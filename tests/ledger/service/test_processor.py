"""The batch processor's outputs, with the real store on SQLite and a recording output port."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services.contracts import events as ev
from services.contracts.codec import EventCodec
from services.contracts.sealed import seal
from services.contracts.topics import Topics
from services.ledger.adapters import tables as t
from services.ledger.adapters.store import LedgerStore
from services.ledger.domain.view import LedgerView
from services.ledger.service import processor as processor_module
from services.ledger.service.outputs import OutputsNotAcknowledged
from services.ledger.service.ports import Batch, RecordRefused, StoreUnavailable
from services.ledger.service.processor import BatchProcessor
from services.ledger.service.records import ReadRecord
from services.platform.db import make_engine
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


class DonorKeysOf(dict[str, bytes]):
    """Data keys as the donor store would hand them out; an erased donor is simply absent."""

    def keys_for(self, donor_refs: Iterable[str]) -> dict[str, bytes]:
        return {ref: self[ref] for ref in donor_refs if ref in self}


def test_a_sealed_message_is_opened_for_the_feed_and_lost_with_the_key(tmp_path: Path) -> None:
    keys = DonorKeysOf(kept=os.urandom(32), erased=os.urandom(32))
    store = LedgerStore(make_engine(f"sqlite:///{tmp_path / 'l.db'}"))
    store.migrate()
    out = RecordingOutput()
    p = BatchProcessor(store, out, Topics(""), "g", donor_keys=DonorKeysOf(kept=keys["kept"]))

    def gift(ref: str, text: str) -> ev.DonationConfirmed:
        return f.confirmed("p1", 100, 0, donor_ref=ref, message=seal(keys[ref], ref, "message", text))

    feed(
        p,
        [
            *f.opened_project("p1"),
            gift("kept", "愿长者吃得暖"),
            gift("erased", "加油"),
            f.confirmed("p1", message="hi"),
        ],
    )
    items = [e for e in out.events("charity.ledger.feed") if isinstance(e, ev.DonationFeedItem)]
    assert [i.message for i in items] == [
        "愿长者吃得暖",
        None,
        "hi",
    ]  # an erased key: the text stays sealed, unshown
    without = BatchProcessor(store, RecordingOutput(), Topics(""), "g2")  # no key store: never shown sealed
    assert without._message(gift("kept", "x"), {}) is None


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


class _RefusingStore(LedgerStore):
    """The real store, but the database refuses any batch holding one of `poison`'s ids,
    as PostgreSQL refuses a value too long for its column."""

    def __init__(self, store: LedgerStore, poison: set[str]) -> None:
        super().__init__(store.engine)
        self.poison = poison
        self.commits: list[int] = []

    def commit_batch(self, batch: Batch, view: LedgerView) -> list[dict[str, Any]]:
        self.commits.append(len(batch.entries))
        if any(entry.entry_id in self.poison for entry, _ in batch.entries):
            raise RecordRefused("StringDataRightTruncation: value too long for type character varying(36)")
        return super().commit_batch(batch, view)


def test_a_record_the_database_refuses_is_dead_lettered_and_the_rest_applied(tmp_path: Path) -> None:
    p, out = processor(tmp_path)
    feed(p, f.opened_project("p1"))
    gifts = [f.confirmed("p1", 100 + i, 0) for i in range(9)]
    poison = gifts[5]
    store = _RefusingStore(p.store, {poison.event_id})  # type: ignore[arg-type]
    p.store = store
    records: list[ReadRecord] = [
        ("charity.donations", 0, 10 + i, b"p1", gift, None) for i, gift in enumerate(gifts)
    ]
    result = p.apply(records)
    assert (result.applied, result.dead_letters) == (8, 1)
    assert sum(project.raised_fen for project in p.view.projects.values()) == sum(
        g.gross_fen for g in gifts if g is not poison
    )
    [(_, value, headers)] = out.sent["charity.dlq"]
    assert EventCodec().decode(value) == poison
    named = {k: v.decode() for k, v in headers}
    assert named["error-kind"] == "refused" and named["source-offset"] == "15"
    assert "value too long for type character varying(36)" in named["reason"]
    # Every record's offset is stored, the dead letter's too: nothing is read again.
    assert p.store.stored_offsets("g", [("charity.donations", 0)]) == {("charity.donations", 0): 19}
    assert len(store.commits) > 2  # it split


def test_a_value_the_rules_cannot_handle_is_dead_lettered_like_a_refusal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p, out = processor(tmp_path)
    feed(p, f.opened_project("p1"))
    good, bad = f.confirmed("p1", 500, 0), f.confirmed("p1", 700, 0)
    real_decide = processor_module.decide

    def decide(event: ev.Event, view: LedgerView, policy: Any) -> Any:
        if event.event_id == bad.event_id:
            raise ValueError("amount overflows the account")
        return real_decide(event, view, policy)

    monkeypatch.setattr(processor_module, "decide", decide)
    result = p.apply(
        [("charity.donations", 0, 0, b"p1", bad, None), ("charity.donations", 0, 1, b"p1", good, None)]
    )
    assert (result.applied, result.dead_letters) == (1, 1)
    assert p.view.projects["p1"].raised_fen == 500  # the failed record left nothing behind in memory
    [(_, _, headers)] = out.sent["charity.dlq"]
    assert "amount overflows the account" in dict(headers)["reason"].decode()


def test_a_store_that_is_away_is_not_a_reason_to_dead_letter(tmp_path: Path) -> None:
    p, out = processor(tmp_path)
    feed(p, f.opened_project("p1"))

    class _Away(LedgerStore):
        def commit_batch(self, batch: Batch, view: LedgerView) -> list[dict[str, Any]]:
            raise StoreUnavailable("OperationalError: connection refused")

    p.store = _Away(p.store.engine)  # type: ignore[attr-defined]
    with pytest.raises(StoreUnavailable):
        p.apply([("charity.donations", 0, 0, b"p1", f.confirmed("p1", 500, 0), None)])
    assert out.sent["charity.dlq"] == []


def test_an_event_id_seen_before_with_another_body_is_a_conflicting_duplicate(tmp_path: Path) -> None:
    p, out = processor(tmp_path)
    feed(p, f.opened_project("p1"))
    gift = f.confirmed("p1", 5000, 0)
    at = ("charity.donations", 1)
    p.apply([(*at, 0, b"p1", gift, None)])
    redelivered = p.apply([(*at, 0, b"p1", gift, None)])  # the same record again: silent
    assert (redelivered.applied, redelivered.duplicates, redelivered.dead_letters) == (0, 1, 0)
    other_amount = dataclasses.replace(gift, gross_fen=9000)
    result = p.apply([(*at, 1, b"p1", other_amount, None)])
    assert (result.applied, result.duplicates, result.dead_letters) == (0, 0, 1)
    assert p.view.projects["p1"].raised_fen == 5000  # the first stands
    [(_, value, headers)] = out.sent["charity.dlq"]
    assert EventCodec().decode(value) == other_amount
    named = {k: v.decode() for k, v in headers}
    assert named["error-kind"] == "conflicting_duplicate"
    assert named["reason"] == (
        f"conflicting duplicate: event {gift.event_id} was applied before with other gross_fen"
    )


def test_a_conflicting_duplicate_within_one_batch_is_caught_too(tmp_path: Path) -> None:
    p, out = processor(tmp_path)
    feed(p, f.opened_project("p1"))
    gift = f.confirmed("p1", 5000, 0, display_name="王五", anonymity="masked")
    renamed = dataclasses.replace(gift, display_name="李四")  # a personal field: compared within a batch
    result = p.apply(
        [
            ("charity.donations", 0, 0, b"p1", gift, None),
            ("charity.donations", 0, 1, b"p1", gift, None),
            ("charity.donations", 0, 2, b"p1", renamed, None),
        ]
    )
    assert (result.applied, result.duplicates, result.dead_letters) == (1, 1, 1)
    [(_, _, headers)] = out.sent["charity.dlq"]
    assert dict(headers)["reason"].decode().endswith("with other display_name")


class _FlakyOutput(RecordingOutput):
    """The broker does not acknowledge while `failing` is set."""

    failing = False

    def flush(self, timeout: float = 30.0) -> None:
        super().flush(timeout)
        if self.failing:
            raise TimeoutError("2 messages not acknowledged")


def test_outputs_the_broker_did_not_acknowledge_are_published_again_from_the_journal(
    tmp_path: Path,
) -> None:
    store = LedgerStore(make_engine(f"sqlite:///{tmp_path / 'l.db'}"))
    store.migrate()
    out = _FlakyOutput()
    p = BatchProcessor(store, out, Topics(""), "g")
    feed(p, f.opened_project("p1"))
    out.failing = True
    gift = f.confirmed("p1", 5000, 0, display_name="王小明", anonymity="masked")
    with pytest.raises(OutputsNotAcknowledged):
        p.apply([("charity.donations", 0, 0, b"p1", gift, None)])
    assert store.known_entry_ids([gift.event_id]) == {gift.event_id}  # committed all the same
    out.failing = False
    out.sent.clear()
    # The project's three entries were acknowledged, and stored so with the gift's commit.
    assert p.catch_up_outputs() == 4
    assert [e.seq for e in out.events("charity.ledger.journal")] == [4]  # type: ignore[attr-defined]
    assert [e.seq for e in out.events("charity.ledger.outcomes")] == [4]  # type: ignore[attr-defined]
    [item] = out.events("charity.ledger.feed")
    assert (item.shown_name, item.seq, item.source_event_id) == ("王**", 4, gift.event_id)  # type: ignore[attr-defined]
    assert out.events("charity.ledger.totals")[-1].raised_fen == 5000  # type: ignore[attr-defined]
    assert store.output_watermark("journal") == 4
    with store.engine.connect() as conn:  # the masked name is kept no longer than needed
        assert conn.scalar(select(func.count()).select_from(t.feed_outbox)) == 0
    # A ledger started on this database later finds nothing beyond the watermark to repeat.
    out.sent.clear()
    BatchProcessor(store, out, Topics(""), "g").catch_up_outputs()
    assert out.sent["charity.ledger.journal"] == [] and len(out.sent["charity.ledger.totals"]) == 1


def test_the_watermark_follows_acknowledged_batches_with_the_next_commit(tmp_path: Path) -> None:
    p, _ = processor(tmp_path)
    p.catch_up_outputs()
    feed(p, f.opened_project("p1"))  # acknowledged in-process; stored with the next batch
    assert p.store.output_watermark("journal") == 0
    feed(p, [f.confirmed("p1", 100, 0)], start=10)
    assert p.store.output_watermark("journal") == 3
