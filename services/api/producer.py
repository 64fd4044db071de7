"""Publishes events and answers only once the broker has acknowledged them.

`publish` is a coroutine run on the API's event loop: a route awaits the
broker's acknowledgement without holding a thread. kafka-python completes its
futures on its own network thread; each completion is handed back to the loop.
What can block (creating the producer, the first metadata of a topic) runs in
a worker thread, so a broker that is down never stalls other requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Protocol

from kafka import KafkaProducer
from kafka.errors import KafkaError

from services.contracts.codec import EventCodec
from services.contracts.events import Event
from services.contracts.topics import Topics
from services.platform.kafka_io import make_producer


class BrokerUnavailable(RuntimeError):
    """The event was not acknowledged. If it was never handed to the broker, it is not
    recorded; if it was (`maybe_recorded`), the broker may still append it."""

    def __init__(self, message: str, maybe_recorded: bool) -> None:
        super().__init__(message)
        self.maybe_recorded = maybe_recorded


class EventPublisher(Protocol):
    async def publish(self, event: Event) -> None: ...

    def close(self) -> None: ...


class KafkaEventPublisher:
    def __init__(self, bootstrap: str, topics: Topics, timeout_s: float = 5.0) -> None:
        self._bootstrap = bootstrap
        self._topics = topics
        self._timeout_s = timeout_s
        self._codec = EventCodec()
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._topics_known: set[str] = set()

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
                    # kafka-python's own default is 30 s: a request would wait that
                    # long for its 503 while the broker is down.
                    bootstrap_timeout_ms=timeout_ms,
                    request_timeout_ms=timeout_ms,
                    delivery_timeout_ms=2 * timeout_ms,  # room for one retry inside the wait
                    client_id="charity-api",
                    # Concurrent requests share produce requests: fewer of them for
                    # the network thread and the broker, for at most 5 ms more per 202.
                    linger_ms=5,
                )
            return self._producer

    async def _ready_producer(self, topic: str) -> KafkaProducer:
        """The producer, with the topic's partitions known, so `send` will not block."""
        producer: KafkaProducer = (
            self._producer if self._producer is not None else await asyncio.to_thread(self._get_producer)
        )
        if topic not in self._topics_known:
            await asyncio.to_thread(producer.partitions_for, topic)
            self._topics_known.add(topic)
        return producer

    async def publish(self, event: Event) -> None:
        topic = self._topic(event)
        try:
            producer = await self._ready_producer(topic)
            sent = producer.send(topic, key=event.project_id.encode(), value=self._codec.encode(event))
        except (KafkaError, TimeoutError) as exc:
            raise BrokerUnavailable(f"the event broker is unreachable: {exc}", maybe_recorded=False) from exc
        try:
            await asyncio.wait_for(_on_loop(sent), timeout=self._timeout_s * 2)
        except (KafkaError, TimeoutError) as exc:
            # Sent but not acknowledged in time: the broker may yet append it.
            raise BrokerUnavailable(
                f"the event broker did not acknowledge the event: {exc}", maybe_recorded=True
            ) from exc

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)


def _on_loop(sent: Any) -> asyncio.Future[Any]:
    """An asyncio future that completes, on the running loop, when kafka-python's does."""
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[Any] = loop.create_future()

    def succeeded(metadata: Any) -> None:
        if not waiter.done():  # not given up on by wait_for meanwhile
            waiter.set_result(metadata)

    def failed(error: BaseException) -> None:
        if not waiter.done():
            waiter.set_exception(error)

    def hand_over(complete: Any, outcome: Any) -> None:
        # Runs on kafka-python's network thread (or here, if already done).
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(complete, outcome)

    sent.add_callback(hand_over, succeeded)
    sent.add_errback(hand_over, failed)
    return waiter
