"""The ledger's publisher process on the real broker: what it publishes, and how it ends."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime

import pytest
from kafka import KafkaConsumer

from services.contracts import events as ev
from services.contracts.codec import EventCodec
from services.contracts.topics import Topics
from services.ledger.adapters.publisher_process import PublisherProcess
from services.ledger.service.outputs import PublishPlan
from services.platform.broken import OutputBroken

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def events_on(bootstrap: str, topic: str, expected: int) -> list[ev.Event]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    seen: list[ev.Event] = []
    deadline = time.monotonic() + 30
    try:
        while len(seen) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                seen.extend(EventCodec().decode(m.value) for m in records)
    finally:
        consumer.close()
    return sorted(seen, key=lambda e: getattr(e, "seq", 0))


def plan(first_seq: int, count: int) -> PublishPlan:
    p = PublishPlan(now=NOW)
    for seq in range(first_seq, first_seq + count):
        p.entries.append(
            (seq, f"e-{seq}", "meals", "DonationConfirmed", "posted", "", "{}", "0" * 64, f"{seq:064x}", "")
        )
    p.feed.append(
        dict(
            occurred_at=NOW,
            project_id="meals",
            source_event_id=f"e-{first_seq}",
            project_name="乐龄助餐",
            seq=first_seq,
            amount_fen=5_000,
            currency="CNY",
            kind="gift",
            channel="qr",
            venue_id="garden",
            shown_name="王**",
            message=None,
        )
    )
    return p


def test_plans_are_published_in_order_with_derived_ids(kafka_bootstrap: str, topics: Topics) -> None:
    publisher = PublisherProcess(kafka_bootstrap, topics, window=1)
    try:
        for first in (1, 4, 7):  # a window of one: each hand-over waits for the one before
            publisher.publish(plan(first, 3))
        publisher.drain()
        assert publisher.acknowledged == 9  # the broker acknowledged every plan, in order
    finally:
        publisher.close()
    outcomes = events_on(kafka_bootstrap, topics.outcomes, 9)
    journal = events_on(kafka_bootstrap, topics.journal, 9)
    assert [(j.seq, j.event_id) for j in journal] == [  # type: ignore[attr-defined]
        (s, ev.derived_id("journal", str(s))) for s in range(1, 10)
    ]
    assert [o.seq for o in outcomes] == list(range(1, 10))  # type: ignore[attr-defined]
    assert outcomes[0].event_id == ev.derived_id("outcome", "e-1")
    assert outcomes[0].occurred_at == NOW and outcomes[0].actor == "ledger"
    feed = events_on(kafka_bootstrap, topics.feed, 3)
    assert [(f.source_event_id, f.shown_name, f.event_id) for f in feed] == [  # type: ignore[attr-defined]
        (f"e-{s}", "王**", ev.derived_id("feed", f"e-{s}")) for s in (1, 4, 7)
    ]


def test_a_dead_publisher_stops_the_ledger_with_output_broken(kafka_bootstrap: str, topics: Topics) -> None:
    publisher = PublisherProcess(kafka_bootstrap, topics)
    try:
        publisher.publish(plan(1, 1))
        publisher.drain()
        assert publisher.pid is not None
        os.kill(publisher.pid, signal.SIGKILL)
        time.sleep(0.5)
        with pytest.raises(OutputBroken, match="publisher process \\(exit code -9\\)"):
            publisher.publish(plan(2, 1))
            publisher.drain()  # if the hand-over itself went into the pipe's buffer
    finally:
        publisher.close()


def test_a_ledger_that_vanishes_leaves_a_publisher_that_finishes_and_exits(
    kafka_bootstrap: str, topics: Topics
) -> None:
    publisher = PublisherProcess(kafka_bootstrap, topics)
    publisher.publish(plan(1, 50))
    # What a kill -9 of the ledger does to the pipe: its end closes, nothing said.
    publisher._conn.close()
    publisher._process.join(30)
    assert publisher._process.exitcode == 0
    assert len(events_on(kafka_bootstrap, topics.outcomes, 50)) == 50
