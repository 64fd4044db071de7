"""The journal's verification status for pages: incremental, and red when the journal
or its signed heads are tampered with, on SQLite and PostgreSQL (the file edit: SQLite)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.ledger.adapters.signing import key_id, sign_tree_head
from services.ledger.adapters.store import LedgerStore
from services.ledger.adapters.tree_heads import TreeHeadSigner, catch_up
from services.ledger.domain.merkle import TreeHead
from services.ledger.read import JournalVerification
from services.ledger.service.processor import BatchProcessor
from services.platform.db import make_engine
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.ops.test_verify_and_rebuild import TOPICS, _insert_head, busy_history, feed

pytestmark = pytest.mark.integration


def signed_history(store: LedgerStore, key: Ed25519PrivateKey, upto: int | None = None) -> TreeHeadSigner:
    events, _ = busy_history()
    feed(BatchProcessor(store, RecordingOutput(), TOPICS, "g"), events[:upto])
    signer = TreeHeadSigner(store.engine, key, RecordingOutput(), TOPICS)
    assert signer.publish_if_grown() is not None
    return signer


def test_a_sound_journal_is_verified_with_its_latest_head(store: LedgerStore) -> None:
    key = Ed25519PrivateKey.generate()
    signer = signed_history(store, key)
    status = JournalVerification(store.engine).status()
    assert status.ok and status.state == "verified" and status.problem == ""
    assert (status.checked_seq, status.journal_seq, status.head_size) == (17, 17, 17)
    assert status.head_key_id == key_id(key) == signer.key_id
    assert status.head_time is not None and abs(datetime.now(UTC) - status.head_time).total_seconds() < 60


def test_each_call_checks_only_what_is_new(store: LedgerStore) -> None:
    key = Ed25519PrivateKey.generate()
    events, _ = busy_history()
    processor = BatchProcessor(store, RecordingOutput(), TOPICS, "g")
    feed(processor, events[:8])
    signer = TreeHeadSigner(store.engine, key, RecordingOutput(), TOPICS)
    signer.publish_if_grown()
    checker = JournalVerification(store.engine, step=5)
    first = checker.status()
    assert (first.state, first.checked_seq, first.journal_seq, first.head_size) == ("catching_up", 5, 8, 8)
    assert not first.ok
    assert (checker.status().state, checker.status().checked_seq) == ("verified", 8)
    feed(processor, events[8:], start=8)  # grown, no head yet for the new entries
    grown = checker.status()
    assert (grown.state, grown.checked_seq, grown.journal_seq, grown.head_size) == ("catching_up", 13, 17, 8)
    signer.publish_if_grown()
    done = checker.status()
    assert (done.state, done.checked_seq, done.head_size) == ("verified", 17, 17)


def test_a_head_signed_by_an_unknown_key_turns_it_red(store: LedgerStore) -> None:
    key = Ed25519PrivateKey.generate()
    signer = signed_history(store, key, upto=8)
    checker = JournalVerification(store.engine)
    assert checker.status().ok
    feed(BatchProcessor(store, RecordingOutput(), TOPICS, "g"), busy_history()[0][8:], start=8)
    catch_up(store.engine, signer.tree)
    head = TreeHead(size=17, root=signer.tree.root(17), timestamp_ms=1)  # the right root, another's key
    _insert_head(store.engine, head, sign_tree_head(Ed25519PrivateKey.generate(), head))
    status = checker.status()
    assert (status.state, status.checked_seq, status.head_size) == ("failed", 17, 17)
    # A head without a key id is checked with the oldest key, as verify does.
    assert status.problem == f"tree head of size 17 has an invalid signature (key {key_id(key)})"
    assert not checker.status().ok  # and it stays red


def _alter_in_file(path: Path, needle: bytes) -> None:
    """Edit the database file itself (the journal's triggers refuse UPDATE), as verify's tests do."""
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    at = data.find(needle)
    assert at > 0 and data.find(needle, at + 1) == -1
    data[at + len(needle) - 3] ^= 0x01  # same length: the file stays valid
    path.write_bytes(bytes(data))


def test_an_entry_altered_behind_its_back_turns_it_red(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    store = LedgerStore(make_engine(f"sqlite:///{path}"))
    store.migrate()
    signed_history(store, Ed25519PrivateKey.generate())
    checker = JournalVerification(store.engine, sweep=4)
    assert checker.status().ok  # entries 1-17 verified, 1-4 re-read
    store.engine.dispose()  # the checker's next connection reads the edited file
    _alter_in_file(path, b'"provider_charge_id":"ch-gift-1"')  # in an entry verified already
    with sqlite3.connect(path) as raw:
        (seq,) = raw.execute("SELECT seq FROM journal WHERE kind = 'DonationConfirmed' LIMIT 1").fetchone()
    assert seq > 4  # not in the first window: found by the rolling re-check
    statuses = [checker.status() for _ in range(5)]
    assert statuses[-1].state == "failed"
    assert statuses[-1].problem.startswith(f"entry {seq} (") and statuses[-1].problem.endswith(
        "was altered: its content no longer matches its chain hash"
    )
    assert statuses[-1].checked_seq == 17
