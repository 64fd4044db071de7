"""The lag from the brokers' end offsets: it rises while the ledger stands still."""

from __future__ import annotations

import threading

import pytest
from kafka import KafkaConsumer
from prometheus_client import REGISTRY

from services.contracts.topics import Topics
from services.ledger.adapters.lag_monitor import LagMonitor
from tests.fixtures import factories as f
from tests.fixtures.ledger import eventually
from tests.ledger.test_ledger_integration import produce

pytestmark = pytest.mark.integration


def gauge(topic: str, partition: int) -> float | None:
    return REGISTRY.get_sample_value("ledger_consumer_lag", {"topic": topic, "partition": str(partition)})


def test_a_ledger_that_reads_nothing_shows_a_rising_lag(kafka_bootstrap: str, topics: Topics) -> None:
    stalled_at = {(topics.donations, p): 0 for p in range(3)}  # a ledger stuck before any gift
    monitor = LagMonitor(kafka_bootstrap, lambda: dict(stalled_at), lambda: 42.0, every_s=0.1)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        assert monitor.measure(consumer) == dict.fromkeys(stalled_at, 0)
        produce(kafka_bootstrap, topics, [f.confirmed("p1", 100, 0) for _ in range(30)])
        lag = monitor.measure(consumer)
        assert sum(lag.values()) == 30  # all on p1's partition
        stop = threading.Event()
        runner = threading.Thread(target=monitor.run, args=(stop,))
        runner.start()
        try:
            produce(kafka_bootstrap, topics, [f.confirmed("p1", 100, 0) for _ in range(20)])
            eventually(
                lambda: sum(gauge(t, p) or 0 for t, p in stalled_at) == 50,
                what="the gauges show the new records",
            )
            assert REGISTRY.get_sample_value("ledger_seconds_since_last_commit") == 42.0
        finally:
            stop.set()
            runner.join(10)
    finally:
        consumer.close()


def test_partitions_without_a_known_position_get_no_figure(kafka_bootstrap: str, topics: Topics) -> None:
    monitor = LagMonitor(kafka_bootstrap, dict, lambda: 0.0)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap)
    try:
        assert monitor.measure(consumer) == {}
    finally:
        consumer.close()
