"""Signed tree heads reach the checkpoints topic even when their first send failed."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.contracts.topics import Topics
from services.ledger.adapters.db import make_engine
from services.ledger.adapters.store import LedgerStore
from services.ledger.adapters.tree_heads import TreeHeadSigner
from services.ledger.service.processor import BatchProcessor
from tests.fixtures import factories as f
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.ops.test_verify_and_rebuild import feed


class _Unanswered(RecordingOutput):
    failing = True

    def flush(self, timeout: float = 30.0) -> None:
        super().flush(timeout)
        if self.failing:
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
    [head] = out.events("charity.ledger.checkpoints")  # ...but the unsent one goes out
    assert head.tree_size == 3  # type: ignore[attr-defined]
    assert store.output_watermark("tree-heads") == 3
    out.sent.clear()
    signer.publish_if_grown()
    assert out.sent["charity.ledger.checkpoints"] == []  # acknowledged heads are not sent again
