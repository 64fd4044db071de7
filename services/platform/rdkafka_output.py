"""The ledger's output producer, on librdkafka (confluent-kafka).

The ledger publishes about two records for every event it applies (an outcome,
a feed item, a share of the totals). With kafka-python's pure-Python producer
that was 35-42% of the ledger's time (docs/benchmarks.md); librdkafka batches,
checksums and sends from its own C threads, outside the GIL, so the batch
pipeline only pays for handing each record over. The API's producer uses the
same configuration (`producer_config`); the consumers, the gateways and admin
stay on kafka-python.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from services.platform.broken import OutputBroken

log = logging.getLogger(__name__)
Headers = list[tuple[str, bytes]]


def producer_config(bootstrap: str, client_id: str, linger_ms: int = 2) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        # Sent means on every in-sync replica, and a retried send is written once.
        "acks": "all",
        "enable.idempotence": True,
        "linger.ms": linger_ms,
        "request.timeout.ms": 10_000,
        # Shorter than flush's 30 s, so a flush that times out has had every
        # record's report: none is left to fail the next batch's flush instead.
        "message.timeout.ms": 25_000,
        # The Java client's (and kafka-python's) choice for keyed records, so a
        # project's records land on the partition any other producer would pick.
        "partitioner": "murmur2_random",
        "logger": log,
    }


class RdKafkaOutput:
    """OutputPort on a librdkafka producer: `flush` raises if any send failed."""

    def __init__(self, bootstrap: str, client_id: str = "charity-ledger", linger_ms: int = 2) -> None:
        config = producer_config(bootstrap, client_id, linger_ms)
        config["error_cb"] = self._client_error
        self._producer = Producer(config)
        self._failures: list[str] = []
        self._fatal: str | None = None
        # Records handed over and not yet reported on. Producer.flush's own count
        # also includes queued log and error events, so it is not used.
        self._in_flight = 0

    def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None) -> None:
        self._raise_if_broken()
        rd_headers: list[tuple[str, str | bytes | None]] | None = list(headers) if headers else None
        while True:
            try:
                self._producer.produce(topic, value, key, headers=rd_headers, on_delivery=self._delivered)
                self._in_flight += 1
                return
            except BufferError:
                # The local queue is full: let deliveries drain it, then hand over again.
                self._producer.poll(0.05)

    def flush(self, timeout: float = 30.0) -> None:
        self._producer.flush(timeout)  # reports are delivered on this thread, in here
        self._raise_if_broken()
        unsent = self._in_flight
        failures, self._failures = self._failures, []
        if unsent:
            raise TimeoutError(f"{unsent} records not acknowledged by the broker within {timeout:.0f}s")
        if failures:
            raise RuntimeError(f"{len(failures)} records were not delivered; first: {failures[0]}")

    def close(self, timeout: float = 10.0) -> None:
        self._producer.flush(timeout)
        unsent = self._in_flight
        if unsent:
            log.error("closing with %d records not acknowledged by the broker", unsent)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        self._in_flight -= 1
        if error is not None:
            self._failures.append(f"{message.topic()}: {error.str()}")

    def _raise_if_broken(self) -> None:
        if self._fatal is not None:
            raise OutputBroken(f"the Kafka producer failed for good ({self._fatal}); restart the process")

    def _client_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = f"{error.name()}: {error.str()}"
            log.critical("Kafka producer: fatal error %s", self._fatal)
        else:
            log.warning("Kafka producer: %s", error.str())
