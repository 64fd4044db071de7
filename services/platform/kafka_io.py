"""kafka-python adapters shared by the services: a producer that waits for acks."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer
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


class KafkaOutput:
    """OutputPort on a KafkaProducer: `flush` raises if any pending send failed."""

    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer
        self._pending: list[FutureRecordMetadata] = []

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None) -> None:
        self._pending.append(self._producer.send(topic, key=key, value=value, headers=headers or []))

    def flush(self, timeout: float = 30.0) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        self._producer.flush(timeout=timeout)
        for future in pending:
            future.get(timeout=0)  # raises the send's exception, if it failed

    def close(self) -> None:
        self._producer.close(timeout=10)
