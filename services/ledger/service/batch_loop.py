"""The ledger's batch loop: take a batch of read records, hand it to the processor.

The next offset of each partition lives in the ledger database, written in the
same transaction as the entries, and reading resumes there whenever partitions
are assigned or a batch failed (`StoredPositions`). After each committed batch
the same offsets are also committed to Kafka, asynchronously, for Kafka's own
tools (consumer-group lag, exporters) to see; reading never resumes from them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from services.ledger import metrics
from services.ledger.service.gc_tuning import tune_collector
from services.ledger.service.ports import LedgerStorePort, StoreUnavailable
from services.ledger.service.processor import BatchProcessor
from services.ledger.service.records import IDLE_POLL_MS, Partition, Positions, ReadRecord
from services.platform.broken import IntakeBroken, LeaseLost, OutputBroken

log = logging.getLogger(__name__)
# Back-off between retries after a transient failure: 0.5 s, doubling, at most
# 30 s, so an outage of any length is waited out without hammering the store.
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 30.0


class RecordSource(Protocol):
    """Where batches come from (`adapters.intake_process.IntakeProcess`)."""

    def poll(self, timeout_ms: int) -> list[ReadRecord]:
        """The next batch, or [] when none came within the timeout."""

    def rewind(self) -> None:
        """Read the assigned partitions again from their stored positions."""

    def positions(self) -> dict[Partition, int]:
        """The next offset of each partition whose position is known (for the lag)."""
        ...

    def committed(self) -> None:
        """Every batch polled so far is committed: tell Kafka too (informational, never fatal)."""

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
        self.healthy = True  # False from a failed attempt until the next one succeeds
        self.last_commit = time.monotonic()

    def run(self, stop: threading.Event) -> None:
        """Apply batches until `stop`; wait out every transient failure.

        First, and after every failure, the outputs of whatever was committed
        beyond the stored outputs watermark are published (again). A failed step
        (publishing, reading the stored positions, applying, committing) is
        retried with capped exponential back-off from the stored offsets, for as
        long as it takes; `healthy` is False meanwhile (the ledger's /readyz).
        Only a broken helper process (`IntakeBroken`, `OutputBroken`) or a lost
        writer lease (`LeaseLost`) ends the loop: the ledger then exits to be
        restarted.
        """
        if threading.current_thread() is threading.main_thread():
            tune_collector()
        failures = 0
        catch_up = True  # at start, and after any failure: it may have come after a commit
        while not stop.is_set():
            try:
                if catch_up:
                    self.processor.catch_up_outputs()
                    catch_up = False
                if failures:
                    self.source.rewind()
                records = self.source.poll(self.idle_poll_ms)
                if records:
                    self.processor.apply(records)
                    self.last_commit = time.monotonic()
                    self.source.committed()
                if failures:
                    log.info("the ledger recovered after %d failed attempts", failures)
                failures = 0
                self.healthy = True
            except (IntakeBroken, OutputBroken, LeaseLost):
                raise  # retrying cannot help: the process must restart (as the standby, if the lease is lost)
            except Exception as exc:
                failures += 1
                catch_up = True
                self.healthy = False
                metrics.BATCH_RETRIES.labels(_cause(exc)).inc()
                delay = min(RETRY_MAX_S, RETRY_FIRST_S * 2 ** min(failures - 1, 16))
                log.warning(
                    "the ledger cannot go on (%s: %s); retrying from the stored offsets in %.1f s",
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=failures == 1,
                )
                stop.wait(delay)

    def close(self) -> None:
        self.source.close()


def _cause(exc: Exception) -> str:
    if isinstance(exc, StoreUnavailable):
        return "store"
    if "kafka" in type(exc).__module__.lower():
        return "broker"
    return "other"
