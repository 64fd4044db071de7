"""Publishes events and answers only once the broker has acknowledged them."""

from __future__ import annotations

import threading
from typing import Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from services.contracts.codec import EventCodec
from services.contracts.events import Event
from services.contracts.topics import Topics
from services.platform.kafka_io import make_producer


class BrokerUnavailable(RuntimeError):
    """The event was not acknowledged; nothing may be assumed recorded."""


class EventPublisher(Protocol):
    def publish(self, event: Event) -> None: ...

    def close(self) -> None: ...


class KafkaEventPublisher:
    def __init__(self, bootstrap: str, topics: Topics, timeout_s: float = 5.0) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._timeout_s = timeout_s
        self._codec = EventCodec()
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def _topic(self, event: Event) -> str:
        return f"{self._topics.prefix}{event.topic_base}"

    def _get_producer(self) -> KafkaProducer:
        # Created on first use, so the API starts (and says 503) while Kafka is down.
        with self._lock:
            if self._producer is None:
                timeout_ms = int(self._timeout_s * 1000)
                self._producer = make_producer(
                    self._bootstrap,
                    max_block_ms=timeout_ms,
                    request_timeout_ms=timeout_ms,
                    delivery_timeout_ms=2 * timeout_ms,  # room for one retry inside the wait
                    client_id="charity-api",
                )
            return self._producer

    def publish(self, event: Event) -> None:
        try:
            future = self._get_producer().send(
                self._topic(event), key=event.project_id.encode(), value=self._codec.encode(event)
            )
            future.get(timeout=self._timeout_s * 2)
        except (KafkaError, TimeoutError) as exc:
            raise BrokerUnavailable(f"the event broker did not acknowledge the event: {exc}") from exc

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
