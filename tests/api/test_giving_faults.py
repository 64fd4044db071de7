"""Giving when things go wrong: a pledge nobody pays, the broker away during a notification."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services.contracts.topics import Topics
from services.ledger.adapters import tables as t
from services.platform.free_ports import free_ports
from services.platform.kafka_admin import ensure_topics
from services.platform.kafka_launcher import LocalKafka
from tests.api.test_giving import open_project, pledge, pledge_row, trade_no
from tests.fixtures.giving import GivingSystem, giving_settings, start_giving
from tests.fixtures.ledger import eventually

pytestmark = pytest.mark.integration


def journal_kinds(giving: GivingSystem, donation_id: str) -> list[str]:
    with giving.ledger.app.store.engine.connect() as conn:
        return list(
            conn.scalars(
                select(t.journal.c.kind)
                .where(t.journal.c.canonical.contains(donation_id, autoescape=True))
                .order_by(t.journal.c.seq)
            )
        )


def test_an_abandoned_payment_becomes_donation_failed(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    settings = giving_settings(
        kafka_bootstrap,
        topics,
        f"sqlite:///{tmp_path / 'ledger.db'}",
        tmp_path,
        pledge_timeout_s=1.0,
        pledge_reconcile_interval_s=0.3,
    )
    giving = start_giving(settings)
    try:
        open_project(giving.api, "meals")
        made = pledge(giving.api)
        # Nobody pays: after the timeout the provider is asked, the order closed, the pledge failed.
        eventually(lambda: pledge_row(giving, made["donation_id"]).status == "failed", what="failed")
        assert "NOTPAY" in pledge_row(giving, made["donation_id"]).failure_reason
        order = giving.sandbox.get("/sandbox/deliveries", params={"out_trade_no": trade_no(made)})
        assert order.json() == []  # never paid, never notified
        eventually(
            lambda: journal_kinds(giving, made["donation_id"]) == ["DonationPledged", "DonationFailed"],
            what="DonationFailed in the journal",
        )
        # The donor who comes back to pay finds the order closed.
        assert giving.sandbox.post(f"/sandbox/orders/{trade_no(made)}/pay").status_code >= 400
        assert giving.api.get("/api/projects/meals/totals").json()["gross_fen"] == 0
    finally:
        giving.stop()


def test_the_broker_away_during_a_notification_gives_503_and_the_retry_one_donation(tmp_path: Path) -> None:
    # Its own broker: the session's shared one must not go away under other tests.
    port, controller_port = free_ports(2)
    broker = LocalKafka(tmp_path / "kafka", port=port, controller_port=controller_port)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(broker.stop)
        broker.start(timeout=90.0)
        topics = Topics(prefix="away.")
        ensure_topics(broker.bootstrap, topics.specs())
        settings = giving_settings(
            broker.bootstrap, topics, f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path, produce_timeout_s=1.0
        )
        giving = start_giving(settings)
        cleanup.callback(giving.stop)
        open_project(giving.api, "meals")
        made = pledge(giving.api)

        broker.stop()
        assert giving.sandbox.post(f"/sandbox/orders/{trade_no(made)}/pay").status_code == 200

        def delivery() -> dict[str, Any]:
            found = giving.sandbox.get("/sandbox/deliveries", params={"out_trade_no": trade_no(made)}).json()
            assert len(found) == 1
            return dict(found[0])

        eventually(
            lambda: delivery()["attempts"] >= 2 and delivery()["last_status"] == 503,
            what="the notification refused with 503 while the broker is away",
        )
        assert pledge_row(giving, made["donation_id"]).status == "paid"  # numbered, not yet confirmed
        broker.start(timeout=90.0)
        eventually(
            lambda: delivery()["state"] == "delivered", timeout=90, what="a retry delivered once it is back"
        )
        assert delivery()["last_status"] == 204
        eventually(lambda: pledge_row(giving, made["donation_id"]).status == "confirmed", what="confirmed")
        eventually(
            lambda: giving.api.get("/api/projects/meals/totals").json()["gross_fen"] == 5000,
            timeout=90,
            what="the gift in the totals",
        )
        with giving.ledger.app.store.engine.connect() as conn:
            confirmed = conn.scalar(
                select(func.count()).select_from(t.journal).where(t.journal.c.kind == "DonationConfirmed")
            )
        assert confirmed == 1
