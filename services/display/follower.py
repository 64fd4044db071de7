"""The Kafka consumer thread: rebuilds the display state from the ledger's output topics.

Every gateway reads every partition on its own: the compacted totals topic from
the beginning and the feed topic from a recent offset (enough for the screens'
rolling feed). It uses manual assignment with no committed offsets, which is
what "each gateway its own consumer group" amounts to when the state is rebuilt
on every start: a shared group would split the partitions, and each gateway
would then know only some of the totals.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaConsumer, TopicPartition

from services.contracts.codec import DecodeError, EventCodec
from services.contracts.events import DonationFeedItem, Event, TotalsUpdated
from services.contracts.topics import Topics
from services.display import metrics

log = logging.getLogger(__name__)
RESTART_PAUSE_S = 2.0
POLL_MS = 200
PROBE_TIMEOUT_MS = 3000
BOOTSTRAP_TIMEOUT_MS = 5000


class Follower:
    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        deliver: Callable[[list[Event]], object],
        caught_up: Callable[[], object],
        broker_status: Callable[[bool], object],
        *,
        feed_backlog: int = 2000,
        probe_interval_s: float = 5.0,
        stale_after_s: float = 20.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.deliver = deliver
        self.caught_up = caught_up
        self.broker_status = broker_status
        self.feed_backlog = feed_backlog
        self.probe_interval_s = probe_interval_s
        self.stale_after_s = stale_after_s
        self.codec = EventCodec()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="display-follower", daemon=True)
        self._caught_up_reported = False
        self._last_contact = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
            except Exception:
                log.exception("follower failed; restarting in %.0fs", RESTART_PAUSE_S)
                self._report_contact(False)  # e.g. no broker at all: screens say "paused" in time
                self._stop.wait(RESTART_PAUSE_S)

    def _follow(self) -> None:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # The broker answers a fetch as soon as one record arrives; the wait only
            # bounds how long an idle fetch stays open.
            fetch_max_wait_ms=POLL_MS,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            # Fail fast without a broker and retry from _run: the default 30 s would keep
            # a stop waiting and the screens' "paused" notice late.
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            client_id="charity-display",
        )
        try:
            partitions = self._partitions(consumer)
            if not partitions:
                return  # stopped while waiting for the topics
            consumer.assign(partitions)
            targets = self._start_positions(consumer, partitions)
            next_probe = time.monotonic() + self.probe_interval_s
            while not self._stop.is_set():
                polled = consumer.poll(timeout_ms=POLL_MS, max_records=2000)
                events = self._decode(r for records in polled.values() for r in records)
                if events:
                    self.deliver(events)
                if not self._caught_up_reported and all(
                    (consumer.position(tp, timeout_ms=1000) or 0) >= end for tp, end in targets.items()
                ):
                    self._caught_up_reported = True
                    self.caught_up()
                if time.monotonic() >= next_probe:
                    self._probe(consumer, partitions)
                    next_probe = time.monotonic() + self.probe_interval_s
        finally:
            consumer.close(autocommit=False)

    def _partitions(self, consumer: KafkaConsumer) -> list[TopicPartition]:
        """All partitions of both topics, waiting for the topics to exist (the ledger creates them)."""
        while not self._stop.is_set():
            found = [
                TopicPartition(topic, p)
                for topic in (self.topics.totals, self.topics.feed)
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if {tp.topic for tp in found} == {self.topics.totals, self.topics.feed}:
                return found
            log.info("waiting for topics %s and %s", self.topics.totals, self.topics.feed)
            self._stop.wait(1.0)
        return []

    def _start_positions(
        self, consumer: KafkaConsumer, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Seek to where the state starts; return the end offsets that count as caught up."""
        ends: dict[TopicPartition, int] = consumer.end_offsets(partitions)
        feed = [tp for tp in partitions if tp.topic == self.topics.feed]
        beginnings: dict[TopicPartition, int] = consumer.beginning_offsets(feed)
        for tp in partitions:
            if tp.topic == self.topics.totals:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, max(beginnings[tp], ends[tp] - self.feed_backlog))
        self._report_contact(True)
        return ends

    def _decode(self, records: Iterable[Any]) -> list[Event]:
        events: list[Event] = []
        for record in records:
            try:
                event = self.codec.decode(record.value)
            except DecodeError as exc:
                metrics.UNDECODABLE.inc()
                where = f"{record.topic}/{record.partition}@{record.offset}"
                log.warning("undecodable record at %s: %s", where, exc)
                continue
            if isinstance(event, TotalsUpdated | DonationFeedItem):
                events.append(event)
        return events

    def _probe(self, consumer: KafkaConsumer, partitions: list[TopicPartition]) -> None:
        """Ask the broker for the end offsets: proves it is reachable and gives the lag."""
        try:
            ends: dict[TopicPartition, int] = consumer.end_offsets(partitions, timeout_ms=PROBE_TIMEOUT_MS)
        except Exception as exc:
            log.warning("broker probe failed: %s", exc)
            self._report_contact(False)
            return
        self._report_contact(True)
        lag: dict[str, int] = {}
        for tp, end in ends.items():
            try:
                position = consumer.position(tp, timeout_ms=0) or 0
            except Exception:  # unknown until the first fetch after a seek: no figure yet
                continue
            lag[tp.topic] = lag.get(tp.topic, 0) + max(0, end - position)
        for topic, behind in lag.items():
            metrics.CONSUMER_LAG.labels(topic).set(behind)

    def _report_contact(self, ok: bool) -> None:
        now = time.monotonic()
        if ok:
            self._last_contact = now
            self.broker_status(True)
        elif now - self._last_contact > self.stale_after_s:
            self.broker_status(False)
