"""The one object that owns the commit order of a batch."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from services.ledger.domain.view import LedgerView
from services.ledger.service.ports import Batch, CommittedRow, Headers, LedgerStorePort, OutputPort


@dataclass
class BatchCommit:
    """Collects a batch's effects, then commits them in this order:

    1. send the batch's dead letters and wait for the broker's acknowledgement,
       so no bad record is lost once the stored offsets move past it;
    2. commit ONE database transaction: journal entries, the projection rows
       they changed, and the next offset of every partition read;
    3. hand what follows from the committed entries (journal records,
       outcomes, feed items, totals of touched projects) to the batch
       processor's publisher, which waits for the broker itself (in-process)
       or within a small window of batches (adapters.publisher_process).

    A crash before step 2 replays the whole batch: dead letters may repeat,
    journal entries cannot (unique event ids). A crash or a broker failure in
    step 3 loses nothing: step 2 stored the gifts' feed items in the outbox and
    the watermark of what the broker had acknowledged, and the outputs of
    everything beyond it are published again (`BatchProcessor.catch_up_outputs`).
    """

    store: LedgerStorePort
    outputs: OutputPort
    batch: Batch
    view: LedgerView
    dead_letters: list[tuple[str, bytes | None, bytes, Headers]] = field(default_factory=list)
    after_commit: list[Callable[[list[CommittedRow]], None]] = field(default_factory=list)

    def commit(self) -> list[CommittedRow]:
        for topic, key, value, headers in self.dead_letters:
            self.outputs.send(topic, key, value, headers)
        if self.dead_letters:
            self.outputs.flush()
        records = self.store.commit_batch(self.batch, self.view)
        for publish in self.after_commit:
            publish(records)
        return records
