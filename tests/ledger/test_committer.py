"""Batches committed one step behind: the processor's in-flight bookkeeping, and the writer process.

`DeferredCommitter` commits a batch only when the next one is submitted, which is
exactly when the writer process may still be committing it; the processor must
then decide the next batch against the batch in flight, not against the database.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from services.contracts import events as ev
from services.contracts.codec import EventCodec
from services.contracts.topics import Topics
from services.ledger.checkpoint import Checkpoint
from services.ledger.committer import (
    BatchFailed,
    InlineCommitter,
    ProcessCommitter,
    WriterConfig,
    WriterGone,
)
from services.ledger.db import make_engine
from services.ledger.domain.state import ProjectTotals
from services.ledger.outputs import OutputPublisher
from services.ledger.ports import RawRecord
from services.ledger.processor import BatchProcessor
from services.ledger.store import LedgerStore
from services.ledger.verify import verify
from tests.fixtures import factories as f
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.test_verify_and_rebuild import feed

CODEC = EventCodec()


class DeferredCommitter:
    """The writer process's timing, in this process: batch N commits when N+1 is submitted."""

    def __init__(self, store: LedgerStore, output: RecordingOutput) -> None:
        self.inline = InlineCommitter(store, OutputPublisher(output, Topics("")))
        self.held: Checkpoint | None = None

    def submit(self, checkpoint: Checkpoint) -> list[int]:
        done = self.settle()
        self.held = checkpoint
        return done

    def settle(self) -> list[int]:
        held, self.held = self.held, None
        return self.inline.submit(held) if held is not None else []

    def publish_totals(self, projects: list[ProjectTotals]) -> None:
        self.inline.publish_totals(projects)

    def close(self) -> None:
        self.settle()


def new_store(tmp_path: Path) -> tuple[LedgerStore, str]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = LedgerStore(make_engine(url))
    store.migrate()
    return store, url


def deferred(tmp_path: Path) -> tuple[BatchProcessor, RecordingOutput]:
    store, _ = new_store(tmp_path)
    out = RecordingOutput()
    return BatchProcessor(store, None, Topics(""), "g", committer=DeferredCommitter(store, out)), out


def outcomes(out: RecordingOutput) -> list[tuple[str, str]]:
    return [
        (o.kind, o.decision) for o in out.events("charity.ledger.outcomes") if isinstance(o, ev.LedgerOutcome)
    ]


def test_a_refund_right_after_its_gift_is_decided_against_the_gift_in_flight(tmp_path: Path) -> None:
    p, out = deferred(tmp_path)
    gift = f.confirmed("p1", 5000, 0, donation_id="gift-1")
    feed(p, f.opened_project("p1"), start=0)
    feed(p, [gift], start=10)  # in flight: not in the database yet
    feed(p, [f.refunded("p1", "gift-1", 2000)], start=20)
    p.settle()
    assert outcomes(out)[-2:] == [("DonationConfirmed", "posted"), ("DonationRefunded", "posted")]
    assert p.store.load_projects()["p1"].refunded_fen == 2000


def test_a_second_confirmation_of_a_gift_in_flight_is_refused_not_counted_twice(tmp_path: Path) -> None:
    p, out = deferred(tmp_path)
    feed(p, f.opened_project("p1"), start=0)
    feed(p, [f.confirmed("p1", 5000, 0, donation_id="gift-1")], start=10)
    feed(p, [f.confirmed("p1", 5000, 0, donation_id="gift-1")], start=20)  # another event id
    p.settle()
    assert outcomes(out)[-2:] == [("DonationConfirmed", "posted"), ("DonationConfirmed", "rejected")]
    assert p.store.load_projects()["p1"].donations_count == 1


def test_a_redelivery_of_a_gift_in_flight_is_a_duplicate_not_a_failure(tmp_path: Path) -> None:
    p, out = deferred(tmp_path)
    gift = f.confirmed("p1", 5000, 0)
    feed(p, f.opened_project("p1"), start=0)
    first = p.process(records([gift], start=10))  # in flight
    again = p.process(records([gift], start=10))  # the same record, read again
    p.settle()
    assert (first.applied, first.duplicates) == (1, 0)
    assert (again.applied, again.duplicates) == (0, 1)
    assert outcomes(out).count(("DonationConfirmed", "posted")) == 1
    assert p.store.load_projects()["p1"].donations_count == 1


def records(events: list[ev.Event], start: int) -> list[RawRecord]:
    return [
        RawRecord(
            f"charity.{e.topic_base.split('.')[1]}", 0, start + i, e.project_id.encode(), CODEC.encode(e)
        )
        for i, e in enumerate(events)
    ]


# --- the writer process ------------------------------------------------------------------


def in_writer_process(tmp_path: Path) -> tuple[BatchProcessor, ProcessCommitter, str]:
    _, url = new_store(tmp_path)
    committer = ProcessCommitter(WriterConfig(url, "", RecordingOutput))
    reader = LedgerStore(make_engine(url, writer=False))
    return BatchProcessor(reader, None, Topics(""), "g", committer=committer), committer, url


def test_the_writer_process_commits_every_batch_and_the_chain_verifies(tmp_path: Path) -> None:
    p, committer, url = in_writer_process(tmp_path)
    try:
        feed(p, f.opened_project("p1"), start=0)
        for batch in range(5):
            feed(p, [f.confirmed("p1", 100 + i, 0) for i in range(20)], start=10 + 20 * batch)
        p.settle()
        project = p.store.load_projects()["p1"]
        assert (project.donations_count, project.gross_fen) == (100, 5 * sum(range(100, 120)))
        assert p.store.stored_offsets("g", [("charity.donations", 0)]) == {("charity.donations", 0): 110}
        assert verify(make_engine(url, writer=False), None).ok
    finally:
        committer.close()


def test_a_batch_the_writer_cannot_commit_fails_the_next_step_and_a_reset_recovers(tmp_path: Path) -> None:
    p, committer, url = in_writer_process(tmp_path)
    try:
        feed(p, f.opened_project("p1"), start=0)
        p.settle()
        # Another writer appends meanwhile: the next batch no longer chains onto the journal.
        other = BatchProcessor(LedgerStore(make_engine(url)), RecordingOutput(), Topics(""), "other")
        feed(other, [f.confirmed("p1", 700, 0)], start=0)
        late = f.confirmed("p1", 300, 0)
        feed(p, [late], start=10)
        with pytest.raises(BatchFailed, match="another writer appended"):
            p.settle()
        p.reset()  # as the consumer does before it seeks back to the stored offsets
        feed(p, [late], start=10)
        p.settle()
        assert p.store.load_projects()["p1"].gross_fen == 1000
        assert verify(make_engine(url, writer=False), None).ok
    finally:
        committer.close()


def test_a_writer_process_that_dies_is_reported_as_broken(tmp_path: Path) -> None:
    p, committer, _ = in_writer_process(tmp_path)
    try:
        feed(p, f.opened_project("p1"), start=0)
        p.settle()
        assert committer.pid is not None
        os.kill(committer.pid, signal.SIGKILL)
        time.sleep(0.2)
        with pytest.raises(WriterGone):
            feed(p, [f.confirmed("p1", 300, 0)], start=10)
            p.settle()
    finally:
        committer.close()
