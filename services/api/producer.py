"""Publishes events and answers only once the broker has acknowledged them.

`publish` is a coroutine run on the API's event loop: a route awaits the
broker's acknowledgement without holding a thread. The producer is librdkafka's
(confluent-kafka): it batches and sends from its own C threads, and a thread of
ours serves its delivery reports, each handed back to the loop. What can block
(a topic's first metadata, which is also how a broker that is down is found
out) runs in a worker thread, so it never stalls other requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from services.contracts.codec import EventCodec
from services.contracts.events import Event
from services.contracts.topics import Topics
from services.platform.rdkafka_output import producer_config


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
        self._topics = topics
        self._timeout_s = timeout_s
        self._codec = EventCodec()
        config = producer_config(bootstrap, "charity-api")
        # Concurrent requests share produce requests: fewer of them for the broker,
        # for at most 5 ms more per 202. A record not acknowledged within twice the
        # timeout is reported as failed, before the route gives up waiting.
        config.update(
            {
                "linger.ms": 5,
                "request.timeout.ms": int(timeout_s * 1000),
                "message.timeout.ms": int(timeout_s * 2000),
            }
        )
        self._producer = Producer(config)
        self._topics_known: set[str] = set()
        self._closing = threading.Event()
        self._reports = threading.Thread(target=self._serve_reports, name="charity-api-reports", daemon=True)
        self._reports.start()

    def _topic(self, event: Event) -> str:
        return f"{self._topics.prefix}{event.topic_base}"

    def _serve_reports(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.1)  # calls the delivery callbacks, on this thread

    async def _check_topic(self, topic: str) -> None:
        """The topic's metadata, once: a broker that is down or a topic that is missing
        is found out here, before anything is handed over."""
        if topic in self._topics_known:
            return
        metadata = await asyncio.to_thread(self._producer.list_topics, topic, self._timeout_s)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None:
            raise BrokerUnavailable(f"the topic {topic} is not available: {found and found.error}", False)
        self._topics_known.add(topic)

    async def publish(self, event: Event) -> None:
        topic = self._topic(event)
        loop = asyncio.get_running_loop()
        acknowledged: asyncio.Future[KafkaError | None] = loop.create_future()

        def report(error: KafkaError | None, _: Message) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
                loop.call_soon_threadsafe(_settle, acknowledged, error)

        try:
            await self._check_topic(topic)
            self._producer.produce(
                topic, self._codec.encode(event), event.project_id.encode(), on_delivery=report
            )
        except (KafkaException, BufferError) as exc:
            raise BrokerUnavailable(f"the event broker is unreachable: {exc}", maybe_recorded=False) from exc
        try:
            error = await asyncio.wait_for(acknowledged, timeout=self._timeout_s * 2 + 1)
        except TimeoutError as exc:
            raise BrokerUnavailable("the event broker did not acknowledge the event", True) from exc
        if error is not None:
            # Sent, perhaps more than once, but not acknowledged: the broker may yet have it.
            raise BrokerUnavailable(f"the event broker did not acknowledge the event: {error.str()}", True)

    def close(self) -> None:
        self._producer.flush(5)
        self._closing.set()
        self._reports.join(1)


def _settle(acknowledged: asyncio.Future[Any], error: KafkaError | None) -> None:
    if not acknowledged.done():  # not given up on by wait_for meanwhile
        acknowledged.set_result(error)
