"""Tamper evidence, signed tree heads, receipts and rebuild, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from services.contracts import events as ev
from services.contracts.codec import EventCodec
from services.contracts.topics import Topics
from services.ledger.adapters.signing import key_id, public_key_pem, sign_tree_head
from services.ledger.adapters.store import LedgerStore
from services.ledger.adapters.tree_heads import TreeHeadSigner
from services.ledger.domain.merkle import TreeHead
from services.ledger.ops.rebuild import compare_with_live, replace_live, replay
from services.ledger.ops.verify import verify
from services.ledger.read.transparency import Transparency
from services.ledger.service.ports import RawRecord
from services.ledger.service.processor import BatchProcessor
from services.verifier.receipt import verify_consistency_between, verify_receipt
from tests.fixtures import factories as f
from tests.fixtures.outputs import RecordingOutput

pytestmark = pytest.mark.integration  # the store runs on the PostgreSQL server too
codec = EventCodec()
TOPICS = Topics("")


def feed(processor: BatchProcessor, events: list[ev.Event], start: int = 0) -> None:
    records = [
        RawRecord(
            f"charity.{e.topic_base.split('.')[1]}", 0, start + i, e.project_id.encode(), codec.encode(e)
        )
        for i, e in enumerate(events)
    ]
    processor.process(records)


def busy_history() -> tuple[list[ev.Event], ev.DonationConfirmed]:
    d = f.disbursement
    gift = f.confirmed("p1", 50_000, 300, donation_id="gift-1")
    events: list[ev.Event] = [
        *f.opened_project("p1"),
        *f.opened_project("p2"),
        gift,
        f.confirmed("p2", 9000, 54),
        f.offline("p1", 1200, "charity_sale", item="二手书"),
        f.refunded("p1", "gift-1", 5000),
        f.confirmed("p3-unknown", 100, 0),
        d(ev.DisbursementRequested, "p1", "x1", "alice", amount_fen=20_000),
        d(ev.DisbursementApproved, "p1", "x1", "bob"),
        d(ev.DisbursementPaid, "p1", "x1", "treasurer"),
        d(ev.EvidenceAttached, "p1", "x1", "alice"),
        f.lifecycle(ev.FundraisingClosed, "p2"),
        f.lifecycle(ev.ProjectClosed, "p2", leftover_disposition="return_to_donors"),
    ]
    return events, gift


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def ledger_with_history(
    store: LedgerStore, key: Ed25519PrivateKey
) -> tuple[LedgerStore, TreeHeadSigner, str]:
    processor = BatchProcessor(store, RecordingOutput(), TOPICS, "g")
    events, gift = busy_history()
    feed(processor, events[:8])
    signer = TreeHeadSigner(store.engine, key, RecordingOutput(), TOPICS)
    assert signer.publish_if_grown() is not None
    feed(processor, events[8:], start=8)
    assert signer.publish_if_grown() is not None
    assert signer.publish_if_grown() is None  # nothing new: no new head
    return store, signer, gift.event_id


@pytest.mark.parametrize("workers", [1, 2])
def test_a_clean_ledger_verifies_and_rebuilds_to_the_live_projections(
    ledger_with_history, key, workers
) -> None:  # type: ignore[no-untyped-def]
    store, _, _ = ledger_with_history
    report = verify(store.engine, key.public_key(), workers=workers)
    assert report.ok, report.problems
    assert report.entries == 17 and report.tree_heads == 2
    rebuilt = replay(store.engine)
    assert compare_with_live(store.engine, rebuilt).equal
    p1 = rebuilt.projects["p1"]
    assert (p1.net_fen, p1.refunded_fen, p1.disbursed_fen, p1.offline_sales_fen) == (
        49_700,
        5000,
        20_000,
        1200,
    )
    replace_live(store.engine, rebuilt)
    assert verify(store.engine, key.public_key()).ok


def test_a_receipt_verifies_with_the_standalone_verifier(ledger_with_history, key) -> None:  # type: ignore[no-untyped-def]
    store, _, gift_event = ledger_with_history
    transparency = Transparency(store.engine)
    receipt = transparency.receipt(gift_event)
    assert receipt is not None and receipt["entry"]["entry_id"] == gift_event
    assert "display_name" not in receipt["entry"]["body"]
    pem = public_key_pem(key.public_key())
    result = verify_receipt(receipt, receipt["tree_head"], pem)
    assert result.ok, result.reason
    # a receipt altered in any way fails
    forged = {**receipt, "entry": {**receipt["entry"], "body": {**receipt["entry"]["body"], "gross_fen": 5}}}
    assert not verify_receipt(forged, receipt["tree_head"], pem).ok
    moved = {**receipt, "leaf_index": receipt["leaf_index"] + 1}
    assert not verify_receipt(moved, receipt["tree_head"], pem).ok
    # and a later head is provably an extension of an earlier one
    newer, older = transparency.heads()
    proof = transparency.consistency(older["tree_size"], newer["tree_size"])
    assert verify_consistency_between(older, newer, proof, pem).ok
    assert not verify_consistency_between(older, {**newer, "root_hash": older["root_hash"]}, proof, pem).ok
    assert transparency.receipt("00000000-0000-4000-8000-000000000000") is None


def test_forged_and_reordered_tree_heads_are_detected(ledger_with_history, key) -> None:  # type: ignore[no-untyped-def]
    store, signer, _ = ledger_with_history
    good = store.engine
    # a head signed by someone else's key
    other = Ed25519PrivateKey.generate()
    head = TreeHead(size=3, root=signer.tree.root(3), timestamp_ms=1)
    _insert_head(good, head, sign_tree_head(other, head))
    report = verify(good, key.public_key())
    # A head without a key id (as before key ids were recorded) is checked with the oldest key.
    assert report.problems[0] == f"tree head of size 3 has an invalid signature (key {key_id(key)})"


def test_a_head_whose_root_belongs_to_another_size_is_detected(ledger_with_history, key) -> None:  # type: ignore[no-untyped-def]
    store, signer, _ = ledger_with_history
    head = TreeHead(
        size=4, root=signer.tree.root(5), timestamp_ms=1
    )  # re-ordered: size 4 claims size 5's root
    _insert_head(store.engine, head, sign_tree_head(key, head))
    report = verify(store.engine, key.public_key())
    assert report.problems == ["tree head of size 4 has a root that does not match the journal"]


def _insert_head(engine, head: TreeHead, signature: bytes) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO tree_heads (tree_size, root_hash, timestamp_ms, signature) "
                "VALUES (:s, :r, :t, :g)"
            ),
            {
                "s": head.size,
                "r": head.root.hex(),
                "t": head.timestamp_ms,
                "g": base64.b64encode(signature).decode(),
            },
        )


@pytest.mark.parametrize("workers", [1, 2])
def test_one_altered_byte_in_the_database_file_is_found(
    tmp_path: Path, key: Ed25519PrivateKey, workers: int
) -> None:
    from services.platform.db import make_engine

    path = tmp_path / "ledger.db"
    store = LedgerStore(make_engine(f"sqlite:///{path}"))
    store.migrate()
    processor = BatchProcessor(store, RecordingOutput(), TOPICS, "g")
    events, gift = busy_history()
    feed(processor, events)
    assert verify(store.engine, key.public_key()).ok
    store.engine.dispose()
    with sqlite3.connect(path) as raw:  # fold the WAL into the main file, then edit the file itself
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    needle = b'"provider_charge_id":"ch-gift-1"'
    at = data.find(needle)
    assert at > 0 and data.find(needle, at + 1) == -1
    data[at + len(needle) - 3] ^= 0x01  # ch-gift-1 -> ch-gjft-1 (same length: the file stays valid)
    path.write_bytes(bytes(data))
    report = verify(make_engine(f"sqlite:///{path}"), key.public_key(), workers=workers)
    assert not report.ok
    with sqlite3.connect(path) as raw:
        (seq,) = raw.execute("SELECT seq FROM journal WHERE entry_id = ?", (gift.event_id,)).fetchone()
    assert report.problems[0] == (
        f"entry {seq} ({gift.event_id}, DonationConfirmed) was altered: "
        "its content no longer matches its chain hash"
    )
