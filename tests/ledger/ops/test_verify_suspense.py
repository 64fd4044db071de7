"""A redirection out of suspense changes two projects: verify (in one worker or two) and rebuild
still agree with the live projections, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.contracts.events import TotalsUpdated
from services.ledger.adapters.store import LedgerStore
from services.ledger.adapters.tree_heads import TreeHeadSigner
from services.ledger.ops.rebuild import compare_with_live, replace_live, replay
from services.ledger.ops.verify import verify
from services.ledger.service.processor import BatchProcessor
from tests.fixtures import factories as f
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.domain.test_suspense_rules import approved, rejected, requested
from tests.ledger.ops.test_verify_and_rebuild import TOPICS, feed

pytestmark = pytest.mark.integration  # the store runs on the PostgreSQL server too


@pytest.mark.parametrize("workers", [1, 2])
def test_a_redirected_and_a_refunded_suspense_verify_and_rebuild(store: LedgerStore, workers: int) -> None:
    output = RecordingOutput()
    processor = BatchProcessor(store, output, TOPICS, "g")
    gift = f.confirmed("closed", gross_fen=5000, fee_fen=30)
    redirect = requested("closed", amount_fen=1200, target_project_id="open")
    refund = requested(
        "closed", action="refund", target_project_id=None, donation_id=gift.donation_id, amount_fen=3000
    )
    turned_down = requested("closed", amount_fen=100, target_project_id="open")
    events = [
        f.registered("closed"),
        *f.opened_project("open"),
        *f.opened_project("third"),
        gift,
        f.offline("closed", 1200),
        redirect,
        refund,
        turned_down,
    ]
    feed(processor, events)
    # Decided in a later batch: the requests are read back from the database, the gift too.
    feed(
        processor,
        [
            approved("closed", redirect.resolution_id, actor="fin-1"),  # the requester: refused
            approved("closed", redirect.resolution_id),
            approved("closed", refund.resolution_id),
            rejected("closed", turned_down.resolution_id),
        ],
        start=len(events),
    )
    key = Ed25519PrivateKey.generate()
    TreeHeadSigner(store.engine, key, RecordingOutput(), TOPICS).publish_if_grown()

    live = store.load_projects()
    assert live["closed"].suspense_fen == 4970 + 1200 - 1200 - 3000
    assert (live["open"].redirected_in_fen, live["open"].raised_fen) == (1200, 1200)
    assert live["open"].last_entry_seq > live["third"].last_entry_seq  # the redirection touched it
    report = verify(store.engine, key.public_key(), workers=workers)
    assert report.ok, report.problems
    rebuilt = replay(store.engine)
    assert compare_with_live(store.engine, rebuilt).equal
    assert rebuilt.donations[gift.donation_id].refunded_fen == 3000
    assert {r.status for r in rebuilt.resolutions.values()} == {"applied", "rejected"}
    replace_live(store.engine, rebuilt)
    assert verify(store.engine, key.public_key(), workers=workers).ok
    # The screens got the target's totals with the redirection's batch.
    totals = [
        e for e in output.events(TOPICS.totals) if isinstance(e, TotalsUpdated) and e.project_id == "open"
    ]
    assert totals and totals[-1].raised_fen == 1200
