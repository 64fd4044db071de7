"""kafka-python adapters shared by the services: a producer that waits for acks."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2
from kafka.producer.future import FutureRecordMetadata

Headers = list[tuple[str, bytes]]


def make_producer(bootstrap: str, **overrides: Any) -> KafkaProducer:
    # acks=all + idempotence: a retried send is written once, and "sent" means
    # every in-sync replica has it. Small linger lets sends within a batch group.
    config: dict[str, Any] = dict(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        batch_size=256 * 1024,
        max_in_flight_requests_per_connection=5,
        request_timeout_ms=10_000,
        delivery_timeout_ms=30_000,
        max_block_ms=10_000,
        client_id="charity-ledger",
    )
    config.update(overrides)
    return KafkaProducer(**config)


@lru_cache(maxsize=1 << 16)
def _key_hash(key: bytes) -> int:
    """The non-negative murmur2 hash by which Kafka's default partitioner places a key."""
    return int(murmur2(key)) & 0x7FFFFFFF


class KafkaOutput:
    """OutputPort on a KafkaProducer: `flush` raises if any pending send failed.

    A keyed record goes to the partition Kafka's default partitioner would pick
    (murmur2 of the key modulo the partition count), named explicitly: the
    ledger sends a few thousand records per batch under a few hundred keys, and
    the pure-Python murmur2 of every send was a visible part of the batch time.
    Partition counts are re-read after every flush, i.e. once per batch.
    """

    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer
        self._pending: list[FutureRecordMetadata] = []
        self._partition_counts: dict[str, int] = {}

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None) -> None:
        partition = None if key is None else _key_hash(key) % self._partition_count(topic)
        self._pending.append(
            self._producer.send(topic, key=key, value=value, headers=headers or [], partition=partition)
        )

    def _partition_count(self, topic: str) -> int:
        count = self._partition_counts.get(topic)
        if count is None:
            count = self._partition_counts[topic] = len(self._producer.partitions_for(topic))
        return count

    def flush(self, timeout: float = 30.0) -> None:
        pending, self._pending = self._pending, []
        self._partition_counts.clear()
        if not pending:
            return
        self._producer.flush(timeout=timeout)
        for future in pending:
            future.get(timeout=0)  # raises the send's exception, if it failed

    def close(self) -> None:
        self._producer.close(timeout=10)
