"""The consumer loop without a broker: which batch failures it retries and which end it."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
from kafka import TopicPartition

from services.ledger.consumer import LedgerConsumer
from services.ledger.ports import RawRecord
from services.platform.rdkafka_output import OutputBroken

PARTITION = TopicPartition("charity.donations", 0)


class _Coordinator:
    def __init__(self) -> None:
        self.rejoin_needed = False

    def need_rejoin(self) -> bool:
        return False

    def request_rejoin(self) -> None:
        self.rejoin_needed = True


class _FakeKafka:
    """Hands out one record per poll and records the seeks the loop makes."""

    def __init__(self) -> None:
        self._coordinator = _Coordinator()
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.offset = 0

    def subscribe(self, topics: list[str], listener: Any) -> None:
        self.topics_subscribed = topics

    def topics(self) -> set[str]:
        return {"charity.donations"}

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[Any]]:
        message = SimpleNamespace(
            topic=PARTITION.topic, partition=0, offset=self.offset, key=b"p1", value=b"v"
        )
        self.offset += 1
        return {PARTITION: [message]}

    def assignment(self) -> set[TopicPartition]:
        return {PARTITION}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    def highwater(self, tp: TopicPartition) -> None:
        return None


class _Store:
    def stored_offsets(self, group_id: str, partitions: Any) -> dict[tuple[str, int], int]:
        return {(PARTITION.topic, 0): 0}


class _FailingProcessor:
    group_id = "ledger"

    def __init__(self, failures: list[Exception], stop: threading.Event) -> None:
        self.failures = failures
        self.stop = stop
        self.batches: list[list[RawRecord]] = []
        self.resets = 0

    def process(self, records: list[RawRecord]) -> None:
        self.batches.append(records)
        if self.failures:
            raise self.failures.pop(0)
        self.stop.set()  # the first batch that goes through ends the test

    def reset(self) -> None:
        self.resets += 1


@pytest.fixture(autouse=True)
def _no_gc_freeze(monkeypatch: pytest.MonkeyPatch) -> None:
    # run() freezes the collector when it owns the main thread: not in pytest's process.
    monkeypatch.setattr("services.ledger.consumer._freeze_startup_objects", lambda: None)


def _loop(failures: list[Exception]) -> tuple[LedgerConsumer, _FakeKafka, _FailingProcessor, threading.Event]:
    stop = threading.Event()
    kafka = _FakeKafka()
    processor = _FailingProcessor(failures, stop)
    loop = LedgerConsumer(kafka, _Store(), processor, ["charity.donations"])  # type: ignore[arg-type]
    return loop, kafka, processor, stop


def test_a_failed_batch_is_read_again_from_the_stored_offsets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.ledger.consumer.RETRY_PAUSE_S", 0.0)
    loop, kafka, processor, stop = _loop([RuntimeError("database is down")])
    loop.run(stop)
    assert len(processor.batches) == 2
    assert kafka.seeks == [(PARTITION, 0)] and processor.resets == 1


def test_a_broken_output_ends_the_loop_instead_of_retrying_for_ever() -> None:
    loop, kafka, processor, stop = _loop([OutputBroken("producer fenced")])
    with pytest.raises(OutputBroken, match="producer fenced"):
        loop.run(stop)
    assert len(processor.batches) == 1 and kafka.seeks == []


def test_consumer_lag_is_measured_at_most_once_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr("services.ledger.consumer.time.monotonic", lambda: clock[0])
    loop, kafka, _, _ = _loop([])
    asked: list[TopicPartition] = []
    kafka.highwater = lambda tp: asked.append(tp)  # type: ignore[method-assign]
    loop._update_lag()
    clock[0] += 0.5
    loop._update_lag()  # half a second later: not again
    assert asked == [PARTITION]
    clock[0] += 0.5
    loop._update_lag()
    assert asked == [PARTITION, PARTITION]
