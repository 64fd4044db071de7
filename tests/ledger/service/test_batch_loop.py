"""The batch loop without a broker: which batch failures it retries and which end it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from services.ledger.service.batch_loop import BatchLoop, StoredPositions
from services.ledger.service.ports import StoreUnavailable
from services.ledger.service.records import Partition, ReadRecord
from services.platform.broken import IntakeBroken, OutputBroken
from tests.fixtures import factories as f

PARTITION = ("charity.donations", 0)


class _Source:
    """Hands out one read gift per poll and records the rewinds."""

    def __init__(self) -> None:
        self.offset = 0
        self.rewinds = 0
        self.closed = False
        self.rewind_failures: list[Exception] = []
        self.committed_at: list[int] = []  # the offset polled up to, at each committed()

    def poll(self, timeout_ms: int) -> list[ReadRecord]:
        record: ReadRecord = (*PARTITION, self.offset, b"p1", f.confirmed("p1"), None)
        self.offset += 1
        return [record]

    def rewind(self) -> None:
        self.rewinds += 1
        if self.rewind_failures:
            raise self.rewind_failures.pop(0)
        self.offset = 0

    def positions(self) -> dict[Partition, int]:
        return {PARTITION: self.offset}

    def committed(self) -> None:
        self.committed_at.append(self.offset)

    def close(self) -> None:
        self.closed = True


class _FailingProcessor:
    group_id = "ledger"

    def __init__(self, failures: list[Exception], stop: threading.Event) -> None:
        self.failures = failures
        self.stop = stop
        self.batches: list[list[ReadRecord]] = []
        self.resets = 0
        self.catch_ups = 0

    def apply(self, records: list[ReadRecord]) -> None:
        self.batches.append(records)
        if self.failures:
            raise self.failures.pop(0)
        self.stop.set()  # the first batch that goes through ends the test

    def reset(self) -> None:
        self.resets += 1

    def catch_up_outputs(self) -> int:
        self.catch_ups += 1
        return 0


@pytest.fixture(autouse=True)
def _no_gc_tuning(monkeypatch: pytest.MonkeyPatch) -> None:
    # run() tunes the collector when it owns the main thread: not in pytest's process.
    monkeypatch.setattr("services.ledger.service.batch_loop.tune_collector", lambda: None)


def _loop(failures: list[Exception]) -> tuple[BatchLoop, _Source, _FailingProcessor, threading.Event]:
    stop = threading.Event()
    source = _Source()
    processor = _FailingProcessor(failures, stop)
    return BatchLoop(source, processor), source, processor, stop  # type: ignore[arg-type]


def test_a_failed_batch_is_read_again_from_the_stored_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.ledger.service.batch_loop.RETRY_FIRST_S", 0.0)
    loop, source, processor, stop = _loop([StoreUnavailable("database is down")])
    loop.run(stop)
    assert source.rewinds == 1
    assert [[r[2] for r in batch] for batch in processor.batches] == [[0], [0]]
    assert loop.healthy
    assert processor.catch_ups == 2  # at start, and after the failure (it may follow a commit)


def test_kafka_hears_of_a_batch_only_once_it_is_committed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.ledger.service.batch_loop.RETRY_FIRST_S", 0.0)
    loop, source, processor, stop = _loop([StoreUnavailable("database is down")])
    loop.run(stop)
    assert len(processor.batches) == 2
    assert source.committed_at == [1]  # after the second batch, not after the failed first


class _RecordingStop(threading.Event):
    """A stop event whose waits return at once and are remembered."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return self.is_set()


def test_an_outage_of_any_length_is_waited_out_with_capped_back_off() -> None:
    """Failing batches and failing rewinds (the stored offsets unreadable) alike."""
    stop = _RecordingStop()
    source = _Source()
    processor = _FailingProcessor([StoreUnavailable("refused")] * 3, stop)
    source.rewind_failures = [StoreUnavailable("refused")] * 8
    loop = BatchLoop(source, processor)  # type: ignore[arg-type]
    healthy_while_failing: list[bool] = []
    original_wait = stop.wait

    def wait(timeout: float | None = None) -> bool:
        healthy_while_failing.append(loop.healthy)
        return original_wait(timeout)

    stop.wait = wait  # type: ignore[method-assign]
    loop.run(stop)
    assert stop.waits == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, 30.0]
    assert not any(healthy_while_failing)
    assert loop.healthy and len(processor.batches) == 4  # three failed, the fourth went through
    assert source.rewinds == 11  # one after each failure: eight of them failed themselves


@pytest.mark.parametrize("broken", [OutputBroken("producer fenced"), IntakeBroken("intake exited")])
def test_a_broken_helper_ends_the_loop_instead_of_retrying_for_ever(broken: Exception) -> None:
    loop, source, processor, stop = _loop([broken])
    with pytest.raises(type(broken), match=str(broken)):
        loop.run(stop)
    assert len(processor.batches) == 1 and source.rewinds == 0


def test_closing_the_loop_closes_its_source() -> None:
    loop, source, _, _ = _loop([])
    loop.close()
    assert source.closed


class _Store:
    def __init__(self) -> None:
        self.asked: list[tuple[str, list[Partition]]] = []

    def stored_offsets(self, group_id: str, partitions: Any) -> dict[Partition, int]:
        self.asked.append((group_id, list(partitions)))
        return {PARTITION: 42}


def test_stored_positions_resume_where_the_database_says_and_reload_the_state() -> None:
    store, processor = _Store(), _FailingProcessor([], threading.Event())
    positions = StoredPositions(store, processor)  # type: ignore[arg-type]
    other = ("charity.projects", 2)
    assert positions([PARTITION, other]) == {PARTITION: 42, other: None}  # None: from the beginning
    assert store.asked == [("ledger", [PARTITION, other])]
    assert processor.resets == 1
