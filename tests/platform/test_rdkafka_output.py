"""The ledger's librdkafka output: where keyed records land, and failures surfacing at flush."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import KafkaError
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import DefaultPartitioner

from services.contracts.topics import TopicSpec
from services.platform.broken import OutputBroken
from services.platform.free_ports import free_ports
from services.platform.kafka_admin import delete_topics, ensure_topics
from services.platform.rdkafka_output import RdKafkaOutput


class _Cluster:
    """What kafka-python's DefaultPartitioner asks of a cluster."""

    def __init__(self, topic: str, partitions: int) -> None:
        self._topic = topic
        self._partitions = set(range(partitions))

    def topics(self) -> set[str]:
        return {self._topic}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions


@pytest.mark.integration
def test_keyed_records_land_where_kafka_pythons_default_partitioner_puts_them(kafka_bootstrap: str) -> None:
    # The API and tests produce with kafka-python; the ledger's outputs must agree on
    # which partition holds a project, or a reader of one partition misses records.
    topic = f"rd-{uuid.uuid4().hex[:8]}"
    ensure_topics(kafka_bootstrap, [TopicSpec(topic, partitions=7)])
    keys = [f"project-{i}".encode() for i in range(200)] + ["项目".encode(), b"x" * 300]
    output = RdKafkaOutput(kafka_bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    landed: dict[bytes, int] = {}
    try:
        for key in keys:
            output.send(topic, key, key, [("h", b"1")])
        output.flush()
        consumer.assign([TopicPartition(topic, p) for p in range(7)])
        deadline = time.monotonic() + 60
        while len(landed) < len(keys) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                landed.update((m.value, m.partition) for m in records)
    finally:
        consumer.close()
        output.close()
        delete_topics(kafka_bootstrap, [topic])
    partitioner = DefaultPartitioner()
    assert landed == {k: partitioner.partition(topic, k, k, k, k, _Cluster(topic, 7)) for k in keys}


def test_flush_raises_when_the_broker_never_acknowledges() -> None:
    (port,) = free_ports(1)  # nothing listens there
    output = RdKafkaOutput(f"127.0.0.1:{port}")
    try:
        output.send("anything", b"k", b"v")
        with pytest.raises(TimeoutError, match="1 records not acknowledged by the broker within 1s"):
            output.flush(timeout=1.0)
    finally:
        output.close(timeout=0.1)


def test_after_a_fatal_error_the_output_refuses_to_send_or_flush() -> None:
    (port,) = free_ports(1)
    output = RdKafkaOutput(f"127.0.0.1:{port}")
    try:
        # What librdkafka's error callback hands over; a real fatal error (a fenced
        # idempotent producer) cannot be provoked on a one-broker test cluster.
        output._client_error(KafkaError(KafkaError._TRANSPORT, "broker down"))
        output.send("anything", b"k", b"v")  # not fatal: the output keeps working
        output._client_error(KafkaError(KafkaError._FATAL, "producer fenced", fatal=True))
        with pytest.raises(OutputBroken, match="producer fenced"):
            output.send("anything", b"k", b"v")
        with pytest.raises(OutputBroken, match="restart the process"):
            output.flush(timeout=0.1)
    finally:
        output.close(timeout=0.1)
