"""Turns a batch of raw input records into one batch commit and commits it."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson

from services.contracts import events as ev
from services.contracts.codec import EventCodec
from services.contracts.sealed import CannotUnseal, is_sealed, unseal
from services.contracts.topics import Topics
from services.ledger import metrics
from services.ledger.domain import journal as j
from services.ledger.domain import suspense
from services.ledger.domain.book import Policy, decide
from services.ledger.domain.duplicates import changes, differences
from services.ledger.domain.masking import shown_name
from services.ledger.domain.projector import apply_entry
from services.ledger.domain.state import ProjectTotals
from services.ledger.domain.view import LedgerView
from services.ledger.service.batch_commit import BatchCommit
from services.ledger.service.outputs import (
    LEDGER_ACTOR,
    OutputPublisher,
    OutputsNotAcknowledged,
    Publisher,
    PublishPlan,
)
from services.ledger.service.ports import (
    JOURNAL_STREAM,
    Batch,
    CommittedRow,
    DonorKeys,
    LedgerStorePort,
    OutputPort,
    RawRecord,
    RecordRefused,
)
from services.ledger.service.records import DeadLetter, Reader, ReadRecord, source_of

log = logging.getLogger(__name__)


CATCH_UP_CHUNK = 2000
# Errors tied to a batch's records rather than to the moment: the same records
# would fail the same way again.
DATA_ERRORS = (RecordRefused, ValueError, TypeError, ArithmeticError, LookupError)


@dataclass
class BatchResult:
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0

    def add(self, other: BatchResult) -> BatchResult:
        return BatchResult(
            self.applied + other.applied,
            self.duplicates + other.duplicates,
            self.dead_letters + other.dead_letters,
        )


class BatchProcessor:
    def __init__(
        self,
        store: LedgerStorePort,
        outputs: OutputPort,
        topics: Topics,
        group_id: str,
        codec: EventCodec | None = None,
        policy: Policy | None = None,
        publisher: Publisher | None = None,
        donor_keys: DonorKeys | None = None,
    ) -> None:
        """donor_keys: opens sealed messages for the feed; without it they are left out."""
        self.store = store
        self.donor_keys = donor_keys
        self.outputs = outputs
        self.topics = topics
        self.group_id = group_id
        self.codec = codec or EventCodec()
        self.policy = policy or Policy()
        self.reader = Reader(topics, self.codec)
        # Outcomes, feed items and totals; in-process unless the ledger hands
        # them to a publisher process (services/ledger/main.py).
        self.publisher = publisher or OutputPublisher(outputs, topics, self.codec)
        self.view = LedgerView()
        self._watermark = 0  # the outputs watermark as last stored
        self._all_totals_published = False
        self.reset()

    def reset(self) -> None:
        """Forget in-memory state (after a failed batch or a rebalance) and reload it."""
        self.view = LedgerView(projects=self.store.load_projects())

    def process(self, records: list[RawRecord]) -> BatchResult:
        """Decode, validate and apply raw records (the intake process does the first two)."""
        read = self.reader.read
        return self.apply([read(r.topic, r.partition, r.offset, r.key, r.value) for r in records])

    def apply(self, records: list[ReadRecord]) -> BatchResult:
        """Apply a batch; a record the ledger cannot apply for what it holds goes to the DLQ.

        When the store refuses the batch for its data (`RecordRefused`), or the
        rules fail on a value (`ValueError` and kin), the batch is split in halves
        until the one offending record is found; that record is dead-lettered with
        the reason, the rest is applied. Each half is a prefix of every partition's
        records (the split keeps their order), so the stored offsets only move
        forward. Any other error (the store or the broker away) propagates, for the
        batch loop to retry the whole batch later.
        """
        ordered = self._in_apply_order(records)
        try:
            return self._apply_once(ordered)
        except DATA_ERRORS as exc:
            self.reset()  # the rules may have changed the in-memory view before failing
            if len(ordered) == 1:
                return self._apply_once([self._refused(ordered[0], exc)])
            log.warning("a batch of %d records was refused (%s); splitting it", len(ordered), exc)
            metrics.BATCH_SPLITS.inc()
            middle = len(ordered) // 2
            return self.apply(ordered[:middle]).add(self.apply(ordered[middle:]))

    def _in_apply_order(self, records: list[ReadRecord]) -> list[ReadRecord]:
        # Kafka orders a project's events within one topic, not across topics.
        # Within a batch, lifecycle events go first (a stable sort keeps each
        # partition's order), so a gift fetched together with the opening of
        # its project is booked to the open project, not to suspense.
        projects = self.topics.projects
        return sorted(records, key=lambda r: r[0] != projects)

    def _refused(self, record: ReadRecord, exc: Exception) -> ReadRecord:
        """The record as a dead letter: the event as the ledger read it, and why."""
        topic, partition, offset, key, event, _ = record
        if event is None:  # already a dead letter: the failure is not this record's data
            raise exc
        reason = f"the ledger could not apply it: {exc}"
        return (topic, partition, offset, key, None, DeadLetter("refused", reason, self.codec.encode(event)))

    def _apply_once(self, records: list[ReadRecord]) -> BatchResult:
        started = time.perf_counter()
        result = BatchResult()
        batch = Batch(group_id=self.group_id, recorded_at=ev.utc_now_ms())
        commit = BatchCommit(self.store, self.outputs, batch, self.view)
        decoded: list[ReadRecord] = []
        offsets = batch.offsets
        for record in records:
            topic, partition, offset, key, event, dead = record
            offsets[(topic, partition)] = offset + 1
            if event is not None:
                decoded.append(record)
            elif dead is not None:
                self._dead_letter((topic, partition, offset), key, dead, commit)
        events = [record[4] for record in decoded if record[4] is not None]
        known = self.store.known_entry_ids(e.event_id for e in events)
        recorded = self.store.recorded_entries(known) if known else {}
        self._prefetch(events)
        keys = self._keys_of_sealed(events)
        feed = batch.feed
        first: dict[str, ev.Event] = {}  # this batch's events by id, to compare duplicates with
        for topic, partition, offset, key, event, _ in decoded:
            assert event is not None
            event_id = event.event_id
            if event_id in known:
                earlier = first.get(event_id)
                changed = (
                    differences(event, recorded[event_id]) if earlier is None else changes(earlier, event)
                )
                if changed:
                    self._conflicting_duplicate((topic, partition, offset), key, event, changed, commit)
                else:
                    result.duplicates += 1  # a redelivery: applied once already
                continue
            known.add(event_id)
            first[event_id] = event
            entry = decide(event, self.view, self.policy)
            apply_entry(entry, self.view)
            batch.entries.append((entry, source_of(topic, partition, offset)))
            if entry.decision == j.POSTED and isinstance(
                event, ev.DonationConfirmed | ev.OfflineDonationRecorded
            ):
                fields = self._feed_fields(event, keys)
                if fields is not None:
                    feed[event_id] = fields
        result.applied = len(batch.entries)
        result.dead_letters = len(commit.dead_letters)
        if self.publisher.acknowledged > self._watermark:
            batch.acknowledged = self.publisher.acknowledged
        commit.after_commit.append(lambda committed: self._publish(committed, feed))
        try:
            commit.commit()
        except Exception:
            metrics.BATCH_FAILURES.inc()
            self.reset()
            raise
        if batch.acknowledged is not None:
            self._watermark = batch.acknowledged
        self.view.clear_dirty()
        # Referenced records are cheap to reload; keeping them would grow without bound.
        self.view.donations.clear()
        self.view.disbursements.clear()
        self.view.resolutions.clear()
        self._observe(result, len(records), batch, time.perf_counter() - started)
        return result

    def _dead_letter(
        self, at: tuple[str, int, int], key: bytes | None, dead: DeadLetter, commit: BatchCommit
    ) -> None:
        topic, partition, offset = at
        log.warning("dead letter from %s: %s", source_of(*at), dead.reason)
        metrics.DEAD_LETTERS.labels(dead.kind).inc()
        headers = [
            ("reason", dead.reason.encode("utf-8")),
            ("error-kind", dead.kind.encode()),
            ("source-topic", topic.encode()),
            ("source-partition", str(partition).encode()),
            ("source-offset", str(offset).encode()),
        ]
        commit.dead_letters.append((self.topics.dlq, key, dead.value, headers))

    def _conflicting_duplicate(
        self,
        at: tuple[str, int, int],
        key: bytes | None,
        event: ev.Event,
        changed: list[str],
        commit: BatchCommit,
    ) -> None:
        """An event id seen before with another body: the first stands, this one is a dead letter."""
        metrics.CONFLICTING_DUPLICATES.inc()
        reason = (
            f"conflicting duplicate: event {event.event_id} was applied before "
            f"with other {', '.join(changed)}"
        )
        dead = DeadLetter("conflicting_duplicate", reason, self.codec.encode(event))
        self._dead_letter(at, key, dead, commit)

    def _prefetch(self, events: list[ev.Event]) -> None:
        donation_ids = {
            e.donation_id
            for e in events
            if isinstance(e, ev.DonationConfirmed | ev.DonationRefunded | ev.SuspenseResolutionRequested)
            and e.donation_id is not None
        }
        disbursement_ids = {e.disbursement_id for e in events if hasattr(e, "disbursement_id")}
        resolution_ids = frozenset(e.resolution_id for e in events if isinstance(e, suspense.ResolutionEvent))
        self.store.prefetch(self.view, donation_ids, disbursement_ids, resolution_ids)

    # --- outputs, after the commit ------------------------------------------------

    def _publish(self, committed: list[CommittedRow], feed: dict[str, dict[str, Any]]) -> None:
        if committed:
            metrics.JOURNAL_LAST_SEQ.set(committed[-1][0])
        by_seq = {row[0]: feed[row[1]] for row in committed if row[1] in feed}
        self.publisher.publish(self._plan(committed, by_seq))

    def _plan(self, committed: list[CommittedRow], feed_by_seq: dict[int, dict[str, Any]]) -> PublishPlan:
        """Everything derived from these committed entries: journal records, outcomes,
        feed items, and the totals of every project they touched."""
        plan = PublishPlan(now=ev.utc_now_ms(), entries=committed)
        plan.feed = [dict(fields, seq=seq) for seq, fields in sorted(feed_by_seq.items())]
        projects = self.view.projects
        # A redirection out of suspense changes its target project too (the body names it).
        targets = {
            suspense.other_project(row[3], row[4], orjson.loads(row[6])["body"])
            for row in committed
            if row[3] == "SuspenseResolutionApproved"
        }
        touched = sorted({row[2] for row in committed} | {t for t in targets if t})
        plan.totals = [totals_event(projects[p]) for p in touched if p in projects]
        return plan

    def catch_up_outputs(self) -> int:
        """Publish everything committed beyond the stored outputs watermark, and move it.

        At start and after a publish the broker did not acknowledge: the journal
        is the source, so what a crash or a broker failure interrupted is sent
        again (consumers skip repeats by id). Returns the new watermark.
        """
        with contextlib.suppress(OutputsNotAcknowledged):
            self.publisher.drain()  # what is under way may be acknowledged yet; it is sent again anyway
        if not self._all_totals_published:
            # The compacted totals topic is the screens' state: make sure it has every project.
            self.publish_all_totals()
            self._all_totals_published = True
        seq = stored = self.store.output_watermark(JOURNAL_STREAM)
        self.publisher.acknowledged = seq
        caught_up = 0
        while True:
            committed, feed = self.store.committed_after(seq, CATCH_UP_CHUNK)
            if not committed:
                break
            # Not waited for one by one: the publisher keeps a window of plans under
            # way, so reading the next chunk overlaps publishing this one.
            self.publisher.publish(self._plan(committed, feed))
            seq = committed[-1][0]
            caught_up += len(committed)
            if self.publisher.acknowledged > stored:
                stored = self.publisher.acknowledged
                self.store.store_watermark(JOURNAL_STREAM, stored)
        self.publisher.drain()
        if seq > stored:
            self.store.store_watermark(JOURNAL_STREAM, seq)
        self.publisher.acknowledged = self._watermark = seq
        metrics.JOURNAL_LAST_SEQ.set(seq)  # everything committed is published now
        if caught_up:
            log.info("published the outputs of %d committed entries again, up to seq %d", caught_up, seq)
        metrics.CAUGHT_UP.inc(caught_up)
        return seq

    def publish_all_totals(self) -> None:
        """Publish every project's totals and wait for the broker (at start, see main)."""
        plan = PublishPlan(now=ev.utc_now_ms())
        plan.totals = [totals_event(project) for project in self.view.projects.values()]
        self.publisher.publish(plan)
        self.publisher.drain()

    def _keys_of_sealed(self, events: list[ev.Event]) -> dict[str, bytes]:
        """The data keys of this batch's gifts whose message is sealed: one lookup per batch."""
        refs = {
            e.donor_ref
            for e in events
            if isinstance(e, ev.DonationConfirmed) and e.donor_ref and is_sealed(e.message)
        }
        if not refs or self.donor_keys is None:
            return {}
        return self.donor_keys.keys_for(refs)

    @staticmethod
    def _message(event: ev.DonationConfirmed, keys: dict[str, bytes]) -> str | None:
        """The gift's message as the screen may show it: opened, or left out if it cannot be."""
        if not is_sealed(event.message):
            return event.message
        key = keys.get(event.donor_ref or "")
        if key is None:  # erased, or no key store: the text stays sealed, and off the screens
            return None
        try:
            return unseal(key, event.donor_ref or "", "message", event.message or "")
        except CannotUnseal:
            return None

    def _feed_fields(self, event: ev.Event, keys: dict[str, bytes]) -> dict[str, Any] | None:
        """The fields of a gift's DonationFeedItem but its id, actor and seq (see outputs.publish_plan)."""
        project = self.view.projects.get(event.project_id)
        project_name = project.plan.get("name", event.project_id) if project else event.project_id
        common: dict[str, Any] = dict(
            occurred_at=event.occurred_at,
            project_id=event.project_id,
            source_event_id=event.event_id,
            project_name=project_name,
        )
        if isinstance(event, ev.DonationConfirmed):
            name = shown_name(event.anonymity, event.display_name)
            if name is None:
                return None
            return dict(
                common,
                amount_fen=event.gross_fen,
                currency=event.currency,
                kind="gift",
                channel=event.channel,
                venue_id=event.venue_id,
                shown_name=name,
                # Shown only after the display's moderation step; never written to the journal.
                message=self._message(event, keys),
            )
        if isinstance(event, ev.OfflineDonationRecorded):
            return dict(
                common,
                amount_fen=event.amount_fen,
                currency=event.currency,
                kind=event.kind,
                channel="venue",
                venue_id=event.venue_id,
                shown_name="",
                item=event.item,
            )
        return None

    def _observe(self, result: BatchResult, size: int, batch: Batch, seconds: float) -> None:
        metrics.BATCH_SIZE.observe(size)
        metrics.APPLY_SECONDS.observe(seconds)
        metrics.DUPLICATES.inc(result.duplicates)
        for decision, count in Counter(entry.decision for entry, _ in batch.entries).items():
            metrics.EVENTS_APPLIED.labels(decision).inc(count)


def totals_event(project: ProjectTotals) -> ev.TotalsUpdated:
    return ev.TotalsUpdated(
        event_id=ev.derived_id(f"totals-{project.last_entry_seq}", project.project_id),
        occurred_at=ev.utc_now_ms(),
        actor=LEDGER_ACTOR,
        project_id=project.project_id,
        name=project.plan.get("name", project.project_id),
        name_en=project.plan.get("name_en"),
        status=str(project.status),
        currency=project.currency,
        goal_fen=project.goal_fen,
        raised_fen=project.raised_fen,
        gross_fen=project.gross_fen,
        fees_fen=project.fees_fen,
        offline_fen=project.offline_cash_fen + project.offline_sales_fen,
        donations_count=project.donations_count,
        refunded_fen=project.refunded_fen,
        disbursed_fen=project.disbursed_fen,
        available_fen=project.fund_fen,
        as_of_seq=project.last_entry_seq,
    )
