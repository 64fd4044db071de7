"""The kafka-python producer settings the services share."""

from __future__ import annotations

from typing import Any

from kafka import KafkaProducer


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
