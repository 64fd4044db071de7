"""API -> real Kafka -> ledger -> database -> API read-back, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from sqlalchemy import select

from services.api.app import create_app
from services.api.producer import KafkaEventPublisher
from services.contracts.events import derived_id
from services.contracts.topics import Topics
from services.ledger.adapters.tables import journal
from services.ledger.read.queries import LedgerQueries
from services.platform.db import make_engine
from services.platform.health import broker_check, database_check
from services.platform.settings import Settings
from tests.fixtures.ledger import RunningLedger, eventually

pytestmark = pytest.mark.integration
STAFF = {"Authorization": "Bearer test-staff-token"}


def make_client(settings: Settings) -> TestClient:
    engine = make_engine(settings.database_url, writer=False)
    publisher = KafkaEventPublisher(settings.kafka_bootstrap, Topics(settings.topic_prefix))
    checks = {"database": database_check(engine), "kafka": broker_check(settings.kafka_bootstrap)}
    return TestClient(create_app(settings, LedgerQueries(engine), publisher, checks))


@pytest.fixture
def client(ledger: RunningLedger) -> Iterator[TestClient]:
    with make_client(ledger.settings) as c:
        yield c


def project_body(project_id: str) -> dict[str, object]:
    return {
        "project_id": project_id,
        "name": "乐龄助餐",
        "name_en": "Meals",
        "organisation": "园区慈善总会",
        "certificate_no": "CSZ-1",
        "purpose": "助餐",
        "goal_fen": 1_000_000,
        "starts_on": "2026-01-01",
        "ends_on": "2026-12-31",
        "beneficiaries": "老人",
        "use_of_funds": "餐费",
        "leftover_handling": "转入同类项目",
    }


def open_project(client: TestClient, project_id: str) -> None:
    assert client.post("/api/projects", json=project_body(project_id), headers=STAFF).status_code == 202
    totals = f"/api/projects/{project_id}/totals"
    eventually(lambda: client.get(totals).status_code == 200, what="registration applied")
    assert client.post(f"/api/projects/{project_id}/approve", headers=STAFF).status_code == 202
    eventually(lambda: client.get(totals).json()["status"] == "approved", what="approval applied")
    assert client.post(f"/api/projects/{project_id}/open-fundraising", headers=STAFF).status_code == 202
    eventually(lambda: client.get(totals).json()["status"] == "fundraising", what="opening applied")


def donate(
    client: TestClient, project_id: str, donation_id: str, gross: int, fee: int = 0, confirmed_at: str = ""
) -> int:
    body: dict[str, object] = {
        "project_id": project_id,
        "donation_id": donation_id,
        "provider_charge_id": f"c-{donation_id}",
        "gross_fen": gross,
        "fee_fen": fee,
        "anonymity": "masked",
        "display_name": "王小明",
    }
    if confirmed_at:
        body["confirmed_at"] = confirmed_at
    return client.post("/api/internal/donations/confirmed", json=body, headers=STAFF).status_code


def metric(name: str) -> float:
    """The ledger's counter (it runs in this process, so its metrics are in this registry)."""
    return REGISTRY.get_sample_value(name) or 0.0


def test_a_donation_travels_through_kafka_into_the_ledger_and_back(
    client: TestClient, ledger: RunningLedger
) -> None:
    open_project(client, "meals")
    paid_at = datetime.now(timezone(timedelta(hours=8))) - timedelta(hours=1)
    paid = paid_at.isoformat()  # microseconds, in Beijing time
    assert donate(client, "meals", "d1", 5000, 30, confirmed_at=paid) == 202
    assert donate(client, "meals", "d2", 2000, 12) == 202
    repeats = metric("ledger_duplicate_events_total")
    conflicts = metric("ledger_conflicting_duplicates_total")
    assert donate(client, "meals", "d1", 5000, 30, confirmed_at=paid) == 202  # a provider retry
    eventually(lambda: client.get("/api/projects/meals/totals").json()["donations_count"] == 2)
    # The same event, skipped as a redelivery; with a time of its own it would be a conflicting one.
    eventually(lambda: metric("ledger_duplicate_events_total") > repeats, what="the retry skipped")
    assert metric("ledger_conflicting_duplicates_total") == conflicts
    engine = make_engine(ledger.settings.database_url, writer=False)
    try:
        with engine.connect() as db:
            (effective,) = db.execute(
                select(journal.c.effective_at).where(journal.c.entry_id == derived_id("confirmed", "d1"))
            ).one()
    finally:
        engine.dispose()
    millisecond = paid_at.replace(microsecond=paid_at.microsecond // 1000 * 1000)
    assert effective.astimezone(UTC) == millisecond.astimezone(UTC)  # kept to the millisecond
    totals = client.get("/api/projects/meals/totals").json()
    assert (totals["gross_fen"], totals["fees_fen"], totals["raised_fen"]) == (7000, 42, 6958)
    listed = client.get("/api/projects").json()
    assert [p["project_id"] for p in listed] == ["meals"]
    page = client.get("/")
    assert page.status_code == 200 and "乐龄助餐" in page.text and "¥69.58" in page.text
    assert client.get("/readyz").json()["status"] == "ready"
    assert "ledger_events_applied_total" in client.get("/metrics").text


def test_the_ledger_publishes_totals_after_each_batch(client: TestClient, ledger: RunningLedger) -> None:
    from kafka import KafkaConsumer

    from services.contracts.codec import EventCodec
    from services.contracts.events import TotalsUpdated

    open_project(client, "kids")
    assert donate(client, "kids", "k1", 10_000) == 202
    eventually(lambda: client.get("/api/projects/kids/totals").json()["raised_fen"] == 10_000)
    topics = Topics(ledger.settings.topic_prefix)
    consumer = KafkaConsumer(
        topics.totals,
        bootstrap_servers=ledger.settings.kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    seen = [EventCodec().decode(m.value) for m in consumer]
    consumer.close()
    latest = [e for e in seen if isinstance(e, TotalsUpdated) and e.project_id == "kids"][-1]
    assert latest.raised_fen == 10_000 and latest.donations_count == 1 and latest.status == "fundraising"
