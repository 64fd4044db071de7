"""KafkaOutput names the partition Kafka's default partitioner would have picked."""

from __future__ import annotations

from typing import Any

from kafka.partitioner.default import DefaultPartitioner

from services.platform.kafka_io import KafkaOutput


class _Cluster:
    def __init__(self, partitions: int) -> None:
        self._partitions = set(range(partitions))

    def topics(self) -> set[str]:
        return {"t"}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions

    def available_partitions_for_topic(self, topic: str) -> set[int]:
        return self._partitions


class _RecordingProducer:
    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.sent: list[dict[str, Any]] = []

    def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def send(self, topic: str, **kwargs: Any) -> object:
        self.sent.append({"topic": topic, **kwargs})
        return object()


def test_keys_land_where_the_default_partitioner_puts_them() -> None:
    keys = [f"project-{i}".encode() for i in range(200)] + ["项目".encode(), b"", b"x" * 300]
    for partitions in (1, 3, 7):
        producer = _RecordingProducer(partitions)
        output = KafkaOutput(producer)  # type: ignore[arg-type]
        for key in keys:
            output.send("t", key, b"v")
        expected = [DefaultPartitioner().partition("t", k, k, b"v", b"v", _Cluster(partitions)) for k in keys]
        assert [s["partition"] for s in producer.sent] == expected


def test_records_without_a_key_are_left_to_the_producer() -> None:
    producer = _RecordingProducer(3)
    KafkaOutput(producer).send("t", None, b"v")  # type: ignore[arg-type]
    assert producer.sent[0]["partition"] is None
