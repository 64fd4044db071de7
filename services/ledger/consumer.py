"""The ledger's Kafka consumer loop: poll a micro-batch, hand it to the processor.

Kafka's own offset commits are never used: the next offset of each partition
lives in the ledger database, written in the same transaction as the entries,
and the consumer seeks there whenever partitions are assigned.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition

from services.ledger import metrics
from services.ledger.ports import RawRecord
from services.ledger.processor import BatchProcessor
from services.ledger.store import LedgerStore
from services.platform.rdkafka_output import OutputBroken

log = logging.getLogger(__name__)
RETRY_PAUSE_S = 1.0
# How long one poll may wait when nothing arrives. Records end a poll at once, so
# this costs no latency. A join that outlasts its poll is picked up again by the
# next one (see _keep_rejoin_requested); long polls make that rarer, and they
# keep a ledger whose broker is gone from spinning.
IDLE_POLL_MS = 1000
# Consumer lag is a gauge scraped every few seconds; measuring it after every
# batch cost a small batch more than its own bookkeeping.
LAG_EVERY_S = 1.0
GC_THRESHOLDS = (100_000, 20, 100)


def make_consumer(
    bootstrap: str, group_id: str, fetch_max_wait_ms: int = 50, **overrides: Any
) -> KafkaConsumer:
    config: dict[str, Any] = dict(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        # A missing input topic is an error to report, never one to create with
        # the broker's defaults (one partition) just by subscribing to it.
        allow_auto_create_topics=False,
        # How long the broker holds a fetch that finds no records (with any, it
        # answers at once: batches are what has piled up since the last poll).
        fetch_max_wait_ms=fetch_max_wait_ms,
        client_id="charity-ledger",
    )
    config.update(overrides)
    return KafkaConsumer(**config)


def _freeze_startup_objects() -> None:
    """Keep what the ledger process built before its first poll out of the collector,
    and let the collector run far less often (GC_THRESHOLDS, why below).

    Modules, the engine, schemas and clients live as long as the process, yet
    every full collection walked them again; the batches allocate enough to run
    one every few thousand events. gc.freeze() moves them to a permanent
    generation (docs/benchmarks.md has the effect). Only where the consumer owns
    the process (its main thread), not in a test process that runs it in a thread.
    """
    gc.collect()
    gc.freeze()
    # A batch keeps thousands of records, events and rows alive until it is
    # committed, so with Python's default thresholds (700, 10, 10) the collector
    # walked them again and again: per 1,000 events about 60 young, 6 middle and
    # 0.5 full collections, 0.82 s in all of a 98,000-event drain (measured with
    # gc.callbacks). Nearly all of them die by reference counting, not by
    # collection; collecting every 100,000 net allocations still bounds what
    # cycles could pile up, and no collection was left in such a drain.
    gc.set_threshold(*GC_THRESHOLDS)


def _keep_rejoin_requested(consumer: KafkaConsumer) -> None:
    """Work around kafka-python 3.0.12 losing a rejoin that a metadata change started.

    The consumer coordinator decides to rejoin when the partitions of a subscribed
    topic change (its metadata snapshot no longer equals the one the assignment was
    made from), without setting the base coordinator's `rejoin_needed`. If the join
    then completes after the poll that started it has timed out, the completed join
    makes the snapshots equal again, `need_rejoin()` turns false, the join's result
    is never taken up, and the member holds nothing from then on. The Java client
    fixed the same race by requesting the rejoin explicitly (KAFKA-9815); this does
    that here: a rejoin, once wanted, stays wanted until a join has been completed
    inside a poll. It touches the coordinator's internals on purpose. The startup
    form of the race failed CI (the join the first metadata refresh forced); the
    later form (partitions added while the ledger is busy) was found by reading the
    code and is not reproduced by a test here.
    """
    coordinator = consumer._coordinator
    wants_rejoin = coordinator.need_rejoin

    def need_rejoin() -> bool:
        needed = bool(wants_rejoin())
        if needed and not coordinator.rejoin_needed:
            coordinator.request_rejoin()
        return needed

    coordinator.need_rejoin = need_rejoin


class _SeekToStoredOffsets(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: LedgerConsumer) -> None:
        self._loop = loop

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        # Nothing in flight: batches commit synchronously inside poll's caller.
        log.info("partitions revoked: %s", sorted(str(tp) for tp in revoked))

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        metrics.PARTITION_ASSIGNMENTS.inc()
        self._loop.seek_to_stored(list(assigned))


class LedgerConsumer:
    def __init__(
        self,
        consumer: KafkaConsumer,
        store: LedgerStore,
        processor: BatchProcessor,
        topics: Iterable[str],
        max_records: int = 500,
        idle_poll_ms: int = IDLE_POLL_MS,
    ) -> None:
        self.consumer = consumer
        self.store = store
        self.processor = processor
        self.max_records = max_records
        self.idle_poll_ms = idle_poll_ms
        self._lag_measured_at = -LAG_EVERY_S
        topics = list(topics)
        _keep_rejoin_requested(self.consumer)
        self.consumer.subscribe(topics=topics, listener=_SeekToStoredOffsets(self))
        # Fetch metadata after subscribing and before the first poll joins the
        # group. The leader's assignment then already knows every subscribed
        # partition; otherwise the metadata arriving just after the join looks like
        # a partition change and forces a second rebalance, the one kafka-python
        # can lose (see _keep_rejoin_requested).
        missing = sorted(set(topics) - set(self.consumer.topics()))
        if missing:
            raise RuntimeError(
                f"input topics {missing} do not exist (create them: charity-ledger kafka topics)"
            )

    def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        stored = self.store.stored_offsets(
            self.processor.group_id, ((tp.topic, tp.partition) for tp in partitions)
        )
        for tp in partitions:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)
        # Another instance may have owned these projects until now.
        self.processor.reset()
        log.info("assigned %d partitions, resuming from stored offsets %s", len(partitions), stored)

    def run(self, stop: threading.Event) -> None:
        if threading.current_thread() is threading.main_thread():
            _freeze_startup_objects()
        while not stop.is_set():
            polled = self.consumer.poll(timeout_ms=self.idle_poll_ms, max_records=self.max_records)
            if not polled:
                self._update_lag()
                continue
            records = [
                RawRecord(m.topic, m.partition, m.offset, m.key, m.value)
                for messages in polled.values()
                for m in messages
            ]
            try:
                self.processor.process(records)
            except OutputBroken:
                raise  # retrying cannot help; the process must restart with a new producer
            except Exception:
                log.exception("batch of %d records failed; retrying from the stored offsets", len(records))
                stop.wait(RETRY_PAUSE_S)
                self.seek_to_stored(list(self.consumer.assignment()))
            self._update_lag()

    def _update_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_measured_at < LAG_EVERY_S:
            return
        self._lag_measured_at = now
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = self.consumer.position(tp, timeout_ms=0)
            except Exception:  # position unknown until the first fetch after a seek
                continue
            if position is not None:
                metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - position))

    def close(self) -> None:
        self.consumer.close(autocommit=False)
