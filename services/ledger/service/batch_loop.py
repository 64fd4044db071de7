"""The ledger's batch loop: take a batch of read records, hand it to the processor.

Kafka's own offset commits are never used: the next offset of each partition
lives in the ledger database, written in the same transaction as the entries,
and reading resumes there whenever partitions are assigned or a batch failed
(`StoredPositions`).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from services.ledger import metrics
from services.ledger.service.gc_tuning import tune_collector
from services.ledger.service.ports import LedgerStorePort
from services.ledger.service.processor import BatchProcessor
from services.ledger.service.records import IDLE_POLL_MS, Partition, Positions, ReadRecord
from services.platform.broken import OutputBroken

log = logging.getLogger(__name__)
RETRY_PAUSE_S = 1.0
# Consumer lag is a gauge scraped every few seconds; measuring it after every
# batch cost a small batch more than its own bookkeeping.
LAG_EVERY_S = 1.0


class RecordSource(Protocol):
    """Where batches come from (`intake_process.IntakeProcess`)."""

    def poll(self, timeout_ms: int) -> list[ReadRecord]:
        """The next batch, or [] when none came within the timeout."""

    def rewind(self) -> None:
        """Read the assigned partitions again from their stored positions."""

    def lag(self) -> dict[Partition, int]: ...

    def close(self) -> None: ...


class StoredPositions:
    """Where reading resumes: the next offsets stored with the entries."""

    def __init__(self, store: LedgerStorePort, processor: BatchProcessor) -> None:
        self.store = store
        self.processor = processor

    def __call__(self, partitions: list[Partition]) -> Positions:
        stored = self.store.stored_offsets(self.processor.group_id, partitions)
        # Another instance may have owned these projects until now, or a failed
        # batch left the in-memory state ahead of the database.
        self.processor.reset()
        return {p: stored.get(p) for p in partitions}


class BatchLoop:
    def __init__(
        self, source: RecordSource, processor: BatchProcessor, idle_poll_ms: int = IDLE_POLL_MS
    ) -> None:
        self.source = source
        self.processor = processor
        self.idle_poll_ms = idle_poll_ms
        self._lag_measured_at = -LAG_EVERY_S

    def run(self, stop: threading.Event) -> None:
        if threading.current_thread() is threading.main_thread():
            tune_collector()
        while not stop.is_set():
            records = self.source.poll(self.idle_poll_ms)
            if records:
                try:
                    self.processor.apply(records)
                except OutputBroken:
                    raise  # retrying cannot help; the process must restart with a new producer
                except Exception:
                    log.exception(
                        "batch of %d records failed; retrying from the stored offsets", len(records)
                    )
                    stop.wait(RETRY_PAUSE_S)
                    self.source.rewind()
            self._update_lag()

    def _update_lag(self) -> None:
        now = time.monotonic()
        if now - self._lag_measured_at < LAG_EVERY_S:
            return
        self._lag_measured_at = now
        for (topic, partition), lag in self.source.lag().items():
            metrics.CONSUMER_LAG.labels(topic, str(partition)).set(lag)

    def close(self) -> None:
        self.source.close()
