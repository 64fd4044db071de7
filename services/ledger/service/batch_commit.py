"""The one object that owns the commit order of a batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from services.ledger.domain.view import LedgerView
from services.ledger.service.ports import Batch, Headers, LedgerStorePort, OutputPort


@dataclass
class BatchCommit:
    """Collects a batch's effects, then commits them in this order:

    1. send the batch's dead letters and wait for the broker's acknowledgement,
       so no bad record is lost once the stored offsets move past it;
    2. commit ONE database transaction: journal entries, the projection rows
       they changed, and the next offset of every partition read;
    3. hand what follows from the committed entries (outcomes, feed items,
       totals of touched projects) to the batch processor's publisher, which
       waits for the broker itself (in-process) or within a small window of
       batches (publisher_process.PublisherProcess).

    A crash before step 2 replays the whole batch: dead letters may repeat,
    journal entries cannot (unique event ids). A crash in step 3 loses no
    money: totals are republished in full when a ledger starts, and the
    compacted totals topic keeps only the latest per project.
    """

    store: LedgerStorePort
    outputs: OutputPort
    batch: Batch
    view: LedgerView
    dead_letters: list[tuple[str, bytes | None, bytes, Headers]] = field(default_factory=list)
    after_commit: list[Callable[[list[dict[str, Any]]], None]] = field(default_factory=list)

    def commit(self) -> list[dict[str, Any]]:
        for topic, key, value, headers in self.dead_letters:
            self.outputs.send(topic, key, value, headers)
        if self.dead_letters:
            self.outputs.flush()
        records = self.store.commit_batch(self.batch, self.view)
        for publish in self.after_commit:
            publish(records)
        return records
