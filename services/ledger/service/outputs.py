"""What the ledger publishes from its journal, and the in-process publisher.

Every output is a function of committed journal entries (by their gap-free
seq): the journal record itself (`charity.ledger.journal`), the outcome, the
feed item of a gift (its fields kept in the outbox until published) and the
totals of every project an entry touched. The batch loop reduces what a batch
committed to a `PublishPlan`: plain values (strings, integers, small dicts),
cheap to pickle. Turning a plan into Avro records and handing them to a
producer is most of the publishing work, so it can run in another process
(`adapters.publisher_process.PublisherProcess`) as well as here
(`OutputPublisher`); both do it with `publish_plan`.

A publisher knows how far the broker has acknowledged its plans
(`acknowledged`, a journal seq; plans are acknowledged in order). The batch
loop stores that as the outputs watermark with its next batch; after a crash or
a failed publish, `BatchProcessor.catch_up_outputs` publishes again everything
beyond the stored watermark. Records may repeat on the wire, never go missing;
each carries a stable id (derived from the entry) so consumers skip repeats.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from services.contracts import events as ev
from services.contracts.codec import EventCodec
from services.contracts.topics import Topics
from services.ledger import metrics
from services.ledger.service.ports import CommittedRow, OutputPort
from services.platform.broken import OutputBroken

log = logging.getLogger(__name__)
LEDGER_ACTOR = "ledger"


class OutputsNotAcknowledged(RuntimeError):
    """The broker did not acknowledge a committed batch's outputs: they are published
    again from the stored watermark, once the broker answers (a transient failure)."""


@dataclass
class PublishPlan:
    now: datetime
    # The committed entries, in seq order: each gives a journal record and an outcome.
    entries: list[CommittedRow] = field(default_factory=list)
    feed: list[dict[str, Any]] = field(default_factory=list)  # DonationFeedItem fields but id, actor
    totals: list[ev.TotalsUpdated] = field(default_factory=list)

    def __len__(self) -> int:
        return 2 * len(self.entries) + len(self.feed) + len(self.totals)

    @property
    def last_seq(self) -> int:
        """The highest journal seq the plan covers (0: none, e.g. totals alone)."""
        return self.entries[-1][0] if self.entries else 0


class Publisher(Protocol):
    # The last_seq of the newest plan the broker acknowledged, all before it too.
    acknowledged: int

    def publish(self, plan: PublishPlan) -> None:
        """Publish a plan; it may still be under way when this returns."""

    def drain(self) -> None:
        """Block until everything published so far is acknowledged by the broker; raise if not."""


def not_acknowledged(reason: str) -> OutputsNotAcknowledged:
    """Counted and logged here; the caller raises it, and the batch loop catches up."""
    metrics.PUBLISH_FAILURES.inc()
    log.error(
        "the broker did not acknowledge a batch's outputs (%s); publishing again from the watermark", reason
    )
    return OutputsNotAcknowledged(reason)


def publish_plan(plan: PublishPlan, outputs: OutputPort, codec: EventCodec, topics: Topics) -> None:
    """Build, encode and send a plan's records, in order: journal records and outcomes,
    feed items, totals."""
    # Records, not Event objects: the same fields, without a frozen dataclass built per record
    # (about a quarter of the publisher's work per record; docs/benchmarks.md).
    for entry in plan.entries:
        seq, entry_id, project_id, kind, decision, reason, canonical, prev_hash, entry_hash, source = entry
        key = project_id.encode()
        committed = {
            "event_id": ev.derived_id("journal", str(seq)),
            "occurred_at": plan.now,
            "actor": LEDGER_ACTOR,
            "project_id": project_id,
            "seq": seq,
            "entry_id": entry_id,
            "canonical": canonical,
            "prev_hash": prev_hash,
            "entry_hash": entry_hash,
            "source": source,
        }
        outputs.send(topics.journal, key, codec.encode_record("JournalEntryCommitted", committed))
        outcome = {
            "event_id": ev.derived_id("outcome", entry_id),
            "occurred_at": plan.now,
            "actor": LEDGER_ACTOR,
            "project_id": project_id,
            "source_event_id": entry_id,
            "kind": kind,
            "decision": decision,
            "reason": reason,
            "seq": seq,
        }
        outputs.send(topics.outcomes, key, codec.encode_record("LedgerOutcome", outcome))
    for fields in plan.feed:
        item = {**fields, "event_id": ev.derived_id("feed", fields["source_event_id"]), "actor": LEDGER_ACTOR}
        outputs.send(
            topics.feed, fields["project_id"].encode(), codec.encode_record("DonationFeedItem", item)
        )
    for update in plan.totals:
        outputs.send(topics.totals, update.project_id.encode(), codec.encode(update))


class TracksAcknowledged:
    """A publisher's `acknowledged` seq: it follows the broker's acknowledgements,
    which come in plan order, and stops at the first plan that failed, even if
    later ones are acknowledged, until a catch-up from the stored watermark sets it."""

    _acknowledged = 0
    _behind = False

    @property
    def acknowledged(self) -> int:
        return self._acknowledged

    @acknowledged.setter
    def acknowledged(self, seq: int) -> None:
        self._acknowledged = seq
        self._behind = False

    def _plan_acknowledged(self, last_seq: int) -> None:
        if not self._behind:
            self._acknowledged = max(self._acknowledged, last_seq)

    def _plan_failed(self, reason: str) -> OutputsNotAcknowledged:
        self._behind = True
        return not_acknowledged(reason)


class OutputPublisher(TracksAcknowledged):
    """Publishes on the calling thread and waits for the broker before returning."""

    def __init__(self, outputs: OutputPort, topics: Topics, codec: EventCodec | None = None) -> None:
        self.outputs = outputs
        self.topics = topics
        self.codec = codec or EventCodec()

    def publish(self, plan: PublishPlan) -> None:
        publish_plan(plan, self.outputs, self.codec, self.topics)
        self.drain()
        self._plan_acknowledged(plan.last_seq)

    def drain(self) -> None:
        try:
            self.outputs.flush()
        except OutputBroken:
            raise  # only a restart helps
        except Exception as exc:
            raise self._plan_failed(f"{type(exc).__name__}: {exc}") from exc


class SizeRoutedPublisher:
    """Small plans published here and now, large ones handed to another publisher.

    A publisher process pays per plan (a pickle, a pipe, its own producer) for
    what it takes off the batch loop per record: at a screen's pace of small
    batches that cost more CPU than it saved, in a backlog's 2,000-record
    batches it gains about a tenth of the ledger's throughput
    (docs/benchmarks.md). Before a small plan is published here, whatever the
    other publisher still has under way is waited for, so records reach each
    topic in the order of the batches, whichever way they went, and the
    acknowledged seq only ever covers a gap-free prefix of the journal.
    """

    def __init__(self, small: Publisher, large: Publisher, large_from: int) -> None:
        self.small = small
        self.large = large
        self.large_from = large_from  # records in a plan (see PublishPlan.__len__)

    @property
    def acknowledged(self) -> int:
        return max(self.small.acknowledged, self.large.acknowledged)

    @acknowledged.setter
    def acknowledged(self, seq: int) -> None:
        self.small.acknowledged = self.large.acknowledged = seq

    def publish(self, plan: PublishPlan) -> None:
        if len(plan) >= self.large_from:
            self.large.publish(plan)
            return
        self.large.drain()
        self.small.publish(plan)

    def drain(self) -> None:
        self.large.drain()
        self.small.drain()
