"""Turns a batch of raw input records into one checkpoint and hands it to the committer."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from services.contracts import events as ev
from services.contracts.codec import DecodeError, EventCodec
from services.contracts.topics import Topics
from services.contracts.validation import problems_with
from services.ledger import metrics
from services.ledger.checkpoint import Checkpoint
from services.ledger.committer import Committer, InlineCommitter
from services.ledger.domain import journal as j
from services.ledger.domain.book import Policy, decide
from services.ledger.domain.projector import apply_entry
from services.ledger.domain.view import LedgerView
from services.ledger.outputs import DeadLetter, FeedSource, OutputPublisher
from services.ledger.ports import OutputPort, RawRecord
from services.ledger.store import Batch, ChainHead, LedgerStore

log = logging.getLogger(__name__)


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0


@dataclass
class _InFlight:
    """A submitted batch until it is committed: what the next batch must not miss."""

    started: float
    size: int
    decisions: Counter[str]
    entry_ids: set[str]
    donations: set[str] = field(default_factory=set)
    disbursements: set[str] = field(default_factory=set)


class BatchProcessor:
    def __init__(
        self,
        store: LedgerStore,
        outputs: OutputPort | None,
        topics: Topics,
        group_id: str,
        codec: EventCodec | None = None,
        policy: Policy | None = None,
        committer: Committer | None = None,
    ) -> None:
        """`outputs` is where batches publish when they commit here (no `committer` given)."""
        self.store = store
        self.topics = topics
        self.group_id = group_id
        self.codec = codec or EventCodec()
        self.policy = policy or Policy()
        if committer is None:
            if outputs is None:
                raise ValueError("a BatchProcessor needs an output port or a committer")
            committer = InlineCommitter(store, OutputPublisher(outputs, topics, self.codec))
        self.committer = committer
        self.view = LedgerView()
        self.head = ChainHead(0, "")
        self._numbers = 0
        self._in_flight: dict[int, _InFlight] = {}
        self.reset()

    def reset(self) -> None:
        """Forget in-memory state (after a failed batch or a rebalance) and reload it.

        A batch still in flight is waited for first, so what is reloaded (and
        the offsets read after this) includes it.
        """
        try:
            self._completed(self.committer.settle())
        except Exception:
            log.warning("the batch in flight was not committed; its records will be read again")
        self._in_flight.clear()
        self.view = LedgerView(projects=self.store.load_projects())
        self.head = self.store.chain_head()

    def settle(self) -> None:
        """Wait for the batch in flight; raise if it was not committed."""
        self._completed(self.committer.settle())

    def process(self, records: list[RawRecord]) -> BatchResult:
        started = time.perf_counter()
        result = BatchResult()
        batch = Batch(group_id=self.group_id, recorded_at=ev.utc_now_ms())
        dead_letters: list[DeadLetter] = []
        decoded: list[tuple[RawRecord, ev.Event]] = []
        # Kafka orders a project's events within one topic, not across topics.
        # Within a batch, lifecycle events go first (a stable sort keeps each
        # partition's order), so a gift fetched together with the opening of
        # its project is booked to the open project, not to suspense.
        for record in sorted(records, key=lambda r: r.topic != self.topics.projects):
            batch.offsets[(record.topic, record.partition)] = record.offset + 1
            event = self._decode(record, dead_letters)
            if event is not None:
                decoded.append((record, event))
        result.dead_letters = len(dead_letters)
        known = self._known([e.event_id for _, e in decoded])
        self._prefetch(decoded)
        feed: list[tuple[ev.Event, j.JournalEntry]] = []
        for record, event in decoded:
            if event.event_id in known:
                result.duplicates += 1
                continue
            known.add(event.event_id)
            entry = decide(event, self.view, self.policy)
            apply_entry(entry, self.view)
            batch.entries.append((entry, record.source))
            if entry.decision == j.POSTED and isinstance(
                event, ev.DonationConfirmed | ev.OfflineDonationRecorded
            ):
                feed.append((event, entry))
        result.applied = len(batch.entries)
        try:
            checkpoint = self._checkpoint(batch, dead_letters, feed)
            flight = _InFlight(
                started,
                len(records),
                Counter(entry.decision for entry, _ in batch.entries),
                {entry.entry_id for entry, _ in batch.entries},
                set(self.view.dirty_donations),
                set(self.view.dirty_disbursements),
            )
            self.view.clear_dirty()
            self._in_flight[checkpoint.number] = flight
            self._completed(self.committer.submit(checkpoint))
        except Exception:
            metrics.BATCH_FAILURES.inc()
            self.reset()
            raise
        self._forget_unpinned()
        metrics.DUPLICATES.inc(result.duplicates)
        return result

    def _checkpoint(
        self, batch: Batch, dead_letters: list[DeadLetter], feed: list[tuple[ev.Event, j.JournalEntry]]
    ) -> Checkpoint:
        prepared, records = self.store.prepare(batch, self.view, self.head)
        self.head = prepared.head
        seq_of = {r["entry_id"]: r["seq"] for r in records}
        self._numbers += 1
        return Checkpoint(
            number=self._numbers,
            prepared=prepared,
            dead_letters=dead_letters,
            outcomes=[
                (r["entry_id"], r["project_id"], r["kind"], r["decision"], r["reason"], r["seq"])
                for r in records
            ],
            feed=[self._feed_source(event, seq_of[entry.entry_id]) for event, entry in feed],
        )

    def _feed_source(self, event: ev.Event, seq: int) -> FeedSource:
        project = self.view.projects.get(event.project_id)
        name = project.plan.get("name", event.project_id) if project else event.project_id
        return (event, seq, name)

    def _completed(self, numbers: list[int]) -> None:
        now = time.perf_counter()
        for number in numbers:
            flight = self._in_flight.pop(number, None)
            if flight is None:
                continue
            metrics.BATCH_SIZE.observe(flight.size)
            metrics.APPLY_SECONDS.observe(now - flight.started)
            for decision, count in flight.decisions.items():
                metrics.EVENTS_APPLIED.labels(decision).inc(count)

    def _known(self, event_ids: list[str]) -> set[str]:
        """The ids already in the journal, or in a batch on its way there."""
        known = self.store.known_entry_ids(event_ids)
        for flight in self._in_flight.values():
            known.update(i for i in event_ids if i in flight.entry_ids)
        return known

    def _forget_unpinned(self) -> None:
        # Referenced records are cheap to reload, and keeping them would grow
        # without bound; but one a batch in flight changed is not in the
        # database yet, so the next batch must find it here.
        pinned_donations = set().union(*(f.donations for f in self._in_flight.values()))
        pinned_disbursements = set().union(*(f.disbursements for f in self._in_flight.values()))
        for key in [k for k in self.view.donations if k not in pinned_donations]:
            del self.view.donations[key]
        for key in [k for k in self.view.disbursements if k not in pinned_disbursements]:
            del self.view.disbursements[key]

    def _decode(self, record: RawRecord, dead_letters: list[DeadLetter]) -> ev.Event | None:
        try:
            event = self.codec.decode(record.value)
        except DecodeError as exc:
            self._dead_letter(record, dead_letters, "undecodable", str(exc))
            return None
        if event.type_name not in ev.EVENT_TYPES or event.topic_base != self._base(record.topic):
            self._dead_letter(
                record, dead_letters, "wrong_topic", f"{event.type_name} does not belong on {record.topic}"
            )
            return None
        problems = problems_with(event)
        if problems:
            self._dead_letter(record, dead_letters, "invalid", "; ".join(problems))
            return None
        return event

    def _base(self, topic: str) -> str:
        return topic[len(self.topics.prefix) :] if topic.startswith(self.topics.prefix) else topic

    def _dead_letter(self, record: RawRecord, dead_letters: list[DeadLetter], kind: str, reason: str) -> None:
        log.warning("dead letter from %s: %s", record.source, reason)
        metrics.DEAD_LETTERS.labels(kind).inc()
        headers = [
            ("reason", reason.encode("utf-8")),
            ("error-kind", kind.encode()),
            ("source-topic", record.topic.encode()),
            ("source-partition", str(record.partition).encode()),
            ("source-offset", str(record.offset).encode()),
        ]
        dead_letters.append((self.topics.dlq, record.key, record.value or b"", headers))

    def _prefetch(self, decoded: list[tuple[RawRecord, ev.Event]]) -> None:
        donation_ids = {
            e.donation_id for _, e in decoded if isinstance(e, ev.DonationConfirmed | ev.DonationRefunded)
        }
        disbursement_ids = {e.disbursement_id for _, e in decoded if hasattr(e, "disbursement_id")}
        self.store.prefetch(self.view, donation_ids, disbursement_ids)

    def publish_all_totals(self) -> None:
        self.committer.publish_totals(list(self.view.projects.values()))

    def close(self) -> None:
        self.committer.close()
