"""The one object that owns the commit order of a batch."""

from __future__ import annotations

from dataclasses import dataclass, field

from services.contracts.events import utc_now_ms
from services.ledger.outputs import DeadLetter, FeedSource, Outcome, OutputPublisher
from services.ledger.store import LedgerStore, PreparedBatch


@dataclass
class Checkpoint:
    """A prepared batch and what follows from it, committed in this order:

    1. send the batch's dead letters and wait for the broker's acknowledgement,
       so no bad record is lost once the stored offsets move past it;
    2. commit ONE database transaction: journal entries, the projection rows
       they changed, and the next offset of every partition read;
    3. publish what follows from the committed entries (outcomes, feed items,
       totals of touched projects) and wait for the broker.

    A crash before step 2 replays the whole batch: dead letters may repeat,
    journal entries cannot (unique event ids). A crash in step 3 loses no
    money: totals are republished in full when a ledger starts, and the
    compacted totals topic keeps only the latest per project.

    Plain data: the ledger's writer process commits it as it arrives.
    """

    number: int
    prepared: PreparedBatch
    dead_letters: list[DeadLetter] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    feed: list[FeedSource] = field(default_factory=list)

    def commit(self, store: LedgerStore, publisher: OutputPublisher) -> None:
        if self.dead_letters:
            publisher.dead_letters(self.dead_letters)
            publisher.flush()
        store.write(self.prepared)
        publisher.outcomes(self.outcomes, utc_now_ms())
        publisher.feed(self.feed)
        publisher.totals(self.prepared.projects)
        publisher.flush()
