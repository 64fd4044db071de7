"""Signed tree heads reach the checkpoints topic even when their first send failed."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import REGISTRY

from services.contracts.events import SigningKeyPublished, TreeHeadPublished, utc_now_ms
from services.contracts.topics import Topics
from services.ledger import metrics
from services.ledger.adapters import tables as t
from services.ledger.adapters.signing import (
    key_id,
    load_or_create_signing_key,
    rotate_signing_key,
    sign_tree_head,
)
from services.ledger.adapters.store import LedgerStore
from services.ledger.adapters.tree_heads import TreeHeadSigner
from services.ledger.domain.merkle import TreeHead
from services.ledger.ops.commands import registered_keys
from services.ledger.ops.verify import verify
from services.ledger.read import Transparency
from services.ledger.service.processor import BatchProcessor
from services.platform.db import make_engine
from tests.fixtures import factories as f
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.ops.test_verify_and_rebuild import feed


class _Unanswered(RecordingOutput):
    """Acknowledges the first `answered` flushes (the signing key's), then none while failing."""

    failing = True
    answered = 1

    def flush(self, timeout: float = 30.0) -> None:
        super().flush(timeout)
        if self.failing and self.flushes > self.answered:
            raise TimeoutError("1 message not acknowledged")


def test_a_head_whose_first_send_failed_is_sent_at_the_next_turn(tmp_path: Path) -> None:
    store = LedgerStore(make_engine(f"sqlite:///{tmp_path / 'l.db'}"))
    store.migrate()
    feed(BatchProcessor(store, RecordingOutput(), Topics(""), "g"), f.opened_project("p1"))
    out = _Unanswered()
    signer = TreeHeadSigner(store.engine, Ed25519PrivateKey.generate(), out, Topics(""))
    with pytest.raises(TimeoutError):
        signer.publish_if_grown()  # stored, sent, not acknowledged
    assert store.output_watermark("tree-heads") == 0
    out.failing = False
    out.sent.clear()
    assert signer.publish_if_grown() is None  # the journal has not grown: no new head...
    [head] = out.events("charity.ledger.checkpoints")  # ...but the unsent one goes out, alone
    assert head.tree_size == 3  # type: ignore[attr-defined]
    assert store.output_watermark("tree-heads") == 3
    out.sent.clear()
    signer.publish_if_grown()
    assert out.sent["charity.ledger.checkpoints"] == []  # acknowledged heads are not sent again


def test_the_latest_signed_head_and_the_journal_are_exported_for_the_alerts(tmp_path: Path) -> None:
    store = LedgerStore(make_engine(f"sqlite:///{tmp_path / 'l.db'}"))
    store.migrate()
    feed(BatchProcessor(store, RecordingOutput(), Topics(""), "g"), f.opened_project("p1"))
    assert REGISTRY.get_sample_value("ledger_journal_last_seq") == 3
    before_ms = utc_now_ms().timestamp() * 1000
    head = TreeHeadSigner(store.engine, Ed25519PrivateKey.generate(), RecordingOutput(), Topics(""))
    assert head.publish_if_grown() is not None
    assert REGISTRY.get_sample_value("ledger_tree_head_size") == 3
    signed_at = REGISTRY.get_sample_value("ledger_tree_head_timestamp_seconds") or 0.0
    assert before_ms / 1000 - 1 <= signed_at <= before_ms / 1000 + 60
    # A ledger that starts later exports the stored head before it signs anything.
    metrics.TREE_HEAD_SIZE.set(0)
    again = TreeHeadSigner(store.engine, Ed25519PrivateKey.generate(), RecordingOutput(), Topics(""))
    assert again.publish_if_grown() is None
    assert REGISTRY.get_sample_value("ledger_tree_head_size") == 3


def test_heads_name_their_key_and_verify_across_a_rotation(tmp_path: Path) -> None:
    store = LedgerStore(make_engine(f"sqlite:///{tmp_path / 'l.db'}"))
    store.migrate()
    processor = BatchProcessor(store, RecordingOutput(), Topics(""), "g")
    key_path = tmp_path / "keys" / "head.pem"
    out = RecordingOutput()
    signer = TreeHeadSigner(
        store.engine, load_or_create_signing_key(key_path), out, Topics(""), key_path=key_path
    )
    first_key = signer.key_id
    feed(processor, f.opened_project("p1"))
    assert signer.publish_if_grown() is not None
    old, new = rotate_signing_key(key_path, store.engine, utc_now_ms())
    assert old == first_key != new
    feed(processor, [f.confirmed("p1", 100, 0)], start=10)
    assert signer.publish_if_grown() is not None  # signed with the rotated key
    heads = [e for e in out.events("charity.ledger.checkpoints") if isinstance(e, TreeHeadPublished)]
    assert [(h.tree_size, h.key_id) for h in heads] == [(3, first_key), (4, new)]
    keys = [e.key_id for e in out.events("charity.ledger.checkpoints") if isinstance(e, SigningKeyPublished)]
    assert keys == [first_key, new]  # each key on the topic before the heads it signs
    assert [k["key_id"] for k in Transparency(store.engine).public_keys()] == [first_key, new]
    assert verify(store.engine, registered_keys(store.engine)).ok
    # A head signed by a key nobody registered fails, naming that key.
    stranger = Ed25519PrivateKey.generate()
    head = TreeHead(size=2, root=signer.tree.root(2), timestamp_ms=1)
    with store.engine.begin() as conn:
        conn.execute(
            t.tree_heads.insert().values(
                tree_size=2,
                root_hash=head.root.hex(),
                timestamp_ms=1,
                signature=base64.b64encode(sign_tree_head(stranger, head)).decode(),
                key_id=key_id(stranger),
            )
        )
    report = verify(store.engine, registered_keys(store.engine))
    assert report.problems == [
        f"tree head of size 2 names the signing key {key_id(stranger)}, which is not a known public key"
    ]
