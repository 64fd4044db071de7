"""The public audit endpoints over a ledger database filled by the real processor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.producer import KafkaEventPublisher
from services.contracts.topics import Topics
from services.ledger.adapters.signing import load_or_create_signing_key
from services.ledger.adapters.store import LedgerStore
from services.ledger.adapters.tree_heads import TreeHeadSigner
from services.ledger.read.queries import LedgerQueries
from services.ledger.service.processor import BatchProcessor
from services.platform.db import make_engine
from services.platform.settings import Settings
from services.verifier.receipt import verify_consistency_between, verify_receipt
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.ops.test_verify_and_rebuild import busy_history, feed

pytestmark = pytest.mark.integration


@pytest.fixture
def client(
    store: LedgerStore, db_url: str, tmp_path: Path
) -> Iterator[tuple[TestClient, TreeHeadSigner, str]]:
    settings = Settings(database_url=db_url, signing_key_path=str(tmp_path / "key.pem"), staff_token="x")
    processor = BatchProcessor(store, RecordingOutput(), Topics(""), "g")
    events, gift = busy_history()
    feed(processor, events)
    signer = TreeHeadSigner(
        store.engine, load_or_create_signing_key(tmp_path / "key.pem"), RecordingOutput(), Topics("")
    )
    signer.publish_if_grown()
    # never asked to publish: these endpoints only read
    publisher = KafkaEventPublisher("127.0.0.1:1", Topics(""))
    app = create_app(settings, LedgerQueries(make_engine(db_url, writer=False)), publisher, {})
    with TestClient(app) as c:
        yield c, signer, gift.event_id


def test_a_donor_can_fetch_and_check_a_receipt(client) -> None:  # type: ignore[no-untyped-def]
    http, _, gift_event = client
    pem = http.get("/api/transparency/public-key").text
    receipt = http.get(f"/api/receipts/{gift_event}").json()
    assert verify_receipt(receipt, receipt["tree_head"], pem).ok
    assert http.get("/api/receipts/nope").status_code == 404


def test_heads_are_consistent_over_time(client) -> None:  # type: ignore[no-untyped-def]
    http, signer, _ = client
    processor = BatchProcessor(LedgerStore(signer.engine), RecordingOutput(), Topics(""), "g")
    from tests.fixtures import factories as f

    feed(processor, [f.confirmed("p1", 777, 0)], start=100)
    signer.publish_if_grown()
    newer, older = http.get("/api/transparency/tree-heads").json()[:2]
    body = http.get(
        "/api/transparency/consistency", params={"first": older["tree_size"], "second": newer["tree_size"]}
    ).json()
    pem = http.get("/api/transparency/public-key").text
    assert verify_consistency_between(body["first"], body["second"], body["consistency_proof"], pem).ok
    assert http.get("/api/transparency/consistency", params={"first": 2, "second": 3}).status_code == 404


def test_statement_lineage_balances_and_donors(client) -> None:  # type: ignore[no-untyped-def]
    http, _, _ = client
    lines = http.get("/api/projects/p1/statement").json()["lines"]
    assert [line["available_after_fen"] for line in lines][-1] == 49_700 + 1200 - 5000 - 20_000
    assert all(line["recorded_at"] >= line["effective_at"][:10] for line in lines)
    lineage = http.get("/api/projects/p1/lineage").json()
    assert lineage["disbursements"] == {"x1": [{"source": "gift-1", "amount_fen": 20_000}]}
    # A gift's own record is for its donor, through the receipt number and code (tests/api/test_giving.py).
    assert http.get("/api/donations/gift-1").status_code == 404
    before = http.get("/api/projects/p1/balances", params={"as_of": "2000-01-01T00:00:00Z"}).json()
    now = http.get("/api/projects/p1/balances", params={"as_of": "2100-01-01T00:00:00Z"}).json()
    assert before["available_fen"] == 0 and now["available_fen"] == 25_900 and now["held_fen"] == 0
    assert http.get("/api/projects/p1/balances", params={"as_of": "2026-01-01T00:00:00"}).status_code == 422
    totals = http.get("/api/projects/p1/totals").json()
    assert totals["donors_count"] == 1 and totals["disclosure_due"] is not None
