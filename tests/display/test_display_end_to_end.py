"""The whole path to a venue screen, with nothing stood in for:

API (create_app, real KafkaEventPublisher) → Kafka → ledger (its own SQLite database) →
charity.ledger.totals / charity.ledger.feed → display gateway → an SSE client.

The other display tests play the ledger with ``LedgerEcho``; this one checks that what
the real ledger publishes is what the gateway expects (ids, seq, masked names, the
"excluded" rule), and that the whole chain stays within the one-second promise.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.contracts.events import derived_id
from services.contracts.topics import Topics
from tests.api.test_end_to_end import STAFF, make_client, open_project
from tests.display.conftest import GatewayFactory
from tests.display.sse_client import SseEvent, SseStream
from tests.display.test_display_integration import project_of, raised_in
from tests.fixtures.ledger import RunningLedger, ledger_settings, start_ledger, stop_ledger

pytestmark = pytest.mark.integration

PROJECT = "e2e-meals"
VENUE = "e2e-hall"


@pytest.fixture
def venues_path(tmp_path: Path) -> Path:
    """Overrides the display conftest's venues: one venue showing this test's project only."""
    path = tmp_path / "venues.json"
    venues = {
        "venues": [
            {"id": VENUE, "title": {"zh": "端到端大厅", "en": "End-to-end hall"}, "projects": [PROJECT]}
        ]
    }
    path.write_text(json.dumps(venues, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.fixture
def sqlite_ledger(kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> Iterator[RunningLedger]:
    # SQLite only: the storage contract is covered on both backends elsewhere; here the
    # subject is the path to the screen, and a PostgreSQL round would double the runtime.
    running = start_ledger(ledger_settings(kafka_bootstrap, topics, f"sqlite:///{tmp_path / 'ledger.db'}"))
    yield running
    stop_ledger(running)


@pytest.fixture
def api(sqlite_ledger: RunningLedger) -> Iterator[TestClient]:
    with make_client(sqlite_ledger.settings) as client:
        yield client


def confirm(client: TestClient, gross_fen: int, fee_fen: int, anonymity: str, name: str) -> tuple[str, float]:
    """Post a confirmed donation; its event id and the moment the 202 arrived."""
    donation_id = f"d-{uuid.uuid4().hex[:10]}"
    body = {
        "project_id": PROJECT,
        "donation_id": donation_id,
        "provider_charge_id": f"c-{donation_id}",
        "gross_fen": gross_fen,
        "fee_fen": fee_fen,
        "anonymity": anonymity,
        "display_name": name,
    }
    answer = client.post("/api/internal/donations/confirmed", json=body, headers=STAFF)
    answered = time.monotonic()
    assert answer.status_code == 202, answer.text
    return str(answer.json()["event_id"]), answered


def feed_ids(event: SseEvent) -> list[str]:
    return [str(gift["id"]) for gift in event.data.get("feed", [])]


def test_a_gift_posted_to_the_api_reaches_a_venue_screen_within_a_second(
    api: TestClient, start_gateway: GatewayFactory
) -> None:
    gateway = start_gateway()
    stream = SseStream(f"{gateway.url}/screen/{VENUE}/events").start()
    try:
        stream.wait_for(lambda e: e.event == "snapshot")
        open_project(api, PROJECT)
        # The API sees the opening in the ledger's database; the screen sees it once the
        # ledger has published the project's totals. Gifts are measured from there on.
        stream.wait_for(lambda e: (project_of(e, PROJECT) or {}).get("status") == "fundraising")

        # A masked donor: the ledger publishes "王**", never the name.
        shown_id, answered = confirm(api, 50_00, 30, "masked", "王小明")
        # The feed item's id is derived from the API's event id (a republish keeps it).
        shown_feed_id = derived_id("feed", shown_id)
        first = stream.wait_for(lambda e: e.event == "update" and shown_feed_id in feed_ids(e))
        assert first.received_at - answered < 1.0
        gift = next(g for g in first.data["feed"] if g["id"] == shown_feed_id)
        assert (gift["name"], gift["amount_fen"], gift["project_id"]) == ("王**", 50_00, PROJECT)
        # In the same message as the total that counts it; the total is the ledger's (net of
        # the fee), not a sum of gifts.
        assert raised_in(first, PROJECT) == 50_00 - 30
        assert first.data["venue_total_fen"] == 50_00 - 30

        # A donor who excluded themselves: counted in the total, never listed.
        excluded_id, answered = confirm(api, 20_00, 12, "excluded", "李雷")
        counted = stream.wait_for(lambda e: raised_in(e, PROJECT) == 50_00 - 30 + 20_00 - 12)
        assert counted.received_at - answered < 1.0

        # A later gift on the same project (same partition, published after it) fences
        # the check: had the excluded gift been put in the feed, it would be here by now.
        fence_id, answered = confirm(api, 10_00, 0, "masked", "赵六")
        fence = stream.wait_for(lambda e: derived_id("feed", fence_id) in feed_ids(e))
        assert fence.received_at - answered < 1.0
        listed = [gift_id for e in stream.data_events() for gift_id in feed_ids(e)]
        assert listed == [shown_feed_id, derived_id("feed", fence_id)]
        assert derived_id("feed", excluded_id) not in listed

        # A screen that connects now gets the same story in its snapshot.
        late = SseStream(f"{gateway.url}/screen/{VENUE}/events").start()
        try:
            snapshot = late.wait_for(lambda e: e.event == "snapshot")
            assert [g["name"] for g in snapshot.data["feed"]] == ["王**", "赵**"]
            assert raised_in(snapshot, PROJECT) == 50_00 - 30 + 20_00 - 12 + 10_00
        finally:
            late.cut()
    finally:
        stream.cut()
