"""What the ledger publishes after a committed batch, and the in-process publisher.

The batch loop reduces a committed batch to a `PublishPlan`: plain values
(strings, integers, small dicts) that say which outcome, feed item and totals
records to publish. Turning a plan into Avro records and handing them to a
producer is most of the publishing work, so it can run in another process
(`publisher_process.PublisherProcess`) as well as here (`OutputPublisher`);
both do it with `publish_plan`.
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
from services.ledger.service.ports import OutputPort
from services.platform.broken import OutputBroken

log = logging.getLogger(__name__)
LEDGER_ACTOR = "ledger"

# (entry_id, project_id, kind, decision, reason, seq) of one committed entry.
# A plain tuple, not a NamedTuple: plans cross a process boundary, and plain
# tuples pickle in about half the time.
OutcomeRow = tuple[str, str, str, str, str, int]


@dataclass
class PublishPlan:
    now: datetime
    outcomes: list[OutcomeRow] = field(default_factory=list)
    feed: list[dict[str, Any]] = field(default_factory=list)  # DonationFeedItem fields
    totals: list[ev.TotalsUpdated] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.outcomes) + len(self.feed) + len(self.totals)


class Publisher(Protocol):
    def publish(self, plan: PublishPlan) -> None:
        """Publish a plan; it may still be under way when this returns."""

    def drain(self) -> None:
        """Block until everything published so far is acknowledged by the broker; raise if not."""


def publish_failed(reason: str) -> None:
    """A committed batch's outputs were not all acknowledged: logged and counted, not
    retried (the entries are committed; totals are republished whole at the next start)."""
    metrics.PUBLISH_FAILURES.inc()
    log.error("publishing a batch's outputs failed: %s", reason)


def publish_plan(plan: PublishPlan, outputs: OutputPort, codec: EventCodec, topics: Topics) -> None:
    """Build, encode and send a plan's records, in order: outcomes, feed items, totals."""
    for entry_id, project_id, kind, decision, reason, seq in plan.outcomes:
        outcome = ev.LedgerOutcome(
            event_id=ev.derived_id("outcome", entry_id),
            occurred_at=plan.now,
            actor=LEDGER_ACTOR,
            project_id=project_id,
            source_event_id=entry_id,
            kind=kind,
            decision=decision,
            reason=reason,
            seq=seq,
        )
        outputs.send(topics.outcomes, project_id.encode(), codec.encode(outcome))
    for fields in plan.feed:
        item = ev.DonationFeedItem(
            event_id=ev.derived_id("feed", fields["source_event_id"]), actor=LEDGER_ACTOR, **fields
        )
        outputs.send(topics.feed, item.project_id.encode(), codec.encode(item))
    for update in plan.totals:
        outputs.send(topics.totals, update.project_id.encode(), codec.encode(update))


class OutputPublisher:
    """Publishes on the calling thread and waits for the broker before returning."""

    def __init__(self, outputs: OutputPort, topics: Topics, codec: EventCodec | None = None) -> None:
        self.outputs = outputs
        self.topics = topics
        self.codec = codec or EventCodec()

    def publish(self, plan: PublishPlan) -> None:
        publish_plan(plan, self.outputs, self.codec, self.topics)
        self.outputs.flush()

    def drain(self) -> None:
        self.outputs.flush()


class SizeRoutedPublisher:
    """Small plans published here and now, large ones handed to another publisher.

    A publisher process pays per plan (a pickle, a pipe, its own producer) for
    what it takes off the batch loop per record: at a screen's pace of small
    batches that cost more CPU than it saved, in a backlog's 2,000-record
    batches it gains about a tenth of the ledger's throughput
    (docs/benchmarks.md). Before a small plan is published here, whatever the
    other publisher still has under way is waited for, so records reach each
    topic in the order of the batches, whichever way they went. A small plan
    the broker did not acknowledge is logged and counted like a large one
    (`publish_failed`).
    """

    def __init__(self, small: Publisher, large: Publisher, large_from: int) -> None:
        self.small = small
        self.large = large
        self.large_from = large_from  # records in a plan (outcomes + feed items + totals)

    def publish(self, plan: PublishPlan) -> None:
        if len(plan) >= self.large_from:
            self.large.publish(plan)
            return
        self.large.drain()
        try:
            self.small.publish(plan)
        except OutputBroken:
            raise  # only a restart helps
        except Exception as exc:  # as the publisher process answers it: see publish_failed
            publish_failed(f"{type(exc).__name__}: {exc}")

    def drain(self) -> None:
        self.large.drain()
        self.small.drain()
