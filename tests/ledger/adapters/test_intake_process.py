"""The ledger's intake process on the real broker: what it reads, from where, and how it ends."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaProducer

from services.contracts.events import Event
from services.contracts.topics import INPUT_PARTITIONS, Topics
from services.ledger.adapters.helper_process import HELPER_NICENESS
from services.ledger.adapters.intake_process import IntakeProcess
from services.ledger.service.records import Partition, Positions, ReadRecord
from services.platform.broken import IntakeBroken
from tests.fixtures import factories as f
from tests.ledger.test_ledger_integration import produce

pytestmark = pytest.mark.integration


class Resume:
    """The batch loop's side of `resume`: positions to hand out, and who asked."""

    def __init__(self, positions: Callable[[Partition], int | None] = lambda _: None) -> None:
        self.positions = positions
        self.asked: list[list[Partition]] = []

    def __call__(self, partitions: list[Partition]) -> Positions:
        self.asked.append(list(partitions))
        return {p: self.positions(p) for p in partitions}


def all_inputs(topics: Topics) -> list[Partition]:
    return sorted((topic, p) for topic in topics.inputs for p in range(INPUT_PARTITIONS))


def read(intake: IntakeProcess, count: int, timeout: float = 45.0) -> list[ReadRecord]:
    records: list[ReadRecord] = []
    deadline = time.monotonic() + timeout
    while len(records) < count and time.monotonic() < deadline:
        records.extend(intake.poll(200))
    assert len(records) >= count, f"read {len(records)} of {count} records within {timeout}s"
    return records


def start(kafka_bootstrap: str, topics: Topics, resume: Resume, group: str = "", **kw: int) -> IntakeProcess:
    return IntakeProcess(kafka_bootstrap, group or f"intake-{uuid.uuid4().hex[:8]}", topics, resume, **kw)


def one_partition_gifts(count: int) -> list[Event]:
    return [f.confirmed("p1", 100 + i, 0) for i in range(count)]  # one key: one partition


def test_batches_arrive_decoded_in_order_from_where_the_ledger_says(
    kafka_bootstrap: str, topics: Topics
) -> None:
    gifts = [f.confirmed(f"p{i % 7}", 100 + i, 0) for i in range(300)]
    produce(kafka_bootstrap, topics, gifts)
    resume = Resume()
    intake = start(kafka_bootstrap, topics, resume, max_records=50)
    try:
        records = read(intake, len(gifts))
        assert resume.asked == [all_inputs(topics)] and sorted(intake.assignment()) == all_inputs(topics)
        assert sorted(e.event_id for *_, e, _ in records if e) == sorted(g.event_id for g in gifts)
        assert all(dead is None for *_, dead in records)
        by_partition: dict[Partition, list[int]] = {}
        for topic, partition, offset, *_ in records:
            by_partition.setdefault((topic, partition), []).append(offset)
        for offsets in by_partition.values():  # from the beginning, each exactly once, in order
            assert offsets == list(range(len(offsets)))
        # Where the batch loop is: past every record; partitions it read nothing
        # from have no known position (so the lag monitor measures none for them).
        assert intake.positions() == {p: len(offsets) for p, offsets in by_partition.items()}
    finally:
        intake.close()


def test_after_a_rewind_batches_read_before_it_are_dropped(kafka_bootstrap: str, topics: Topics) -> None:
    produce(kafka_bootstrap, topics, one_partition_gifts(100))
    start_at = {"offset": 40}
    resume = Resume(lambda p: start_at["offset"] if p[0] == topics.donations else None)
    intake = start(kafka_bootstrap, topics, resume, max_records=10)
    try:
        first = read(intake, 1)
        assert first[0][2] == 40  # the stored position, not the beginning
        time.sleep(1)  # the intake reads its window of batches ahead meanwhile
        start_at["offset"] = 5
        intake.rewind()
        again = read(intake, 95)
        assert [offset for _, _, offset, *_ in again] == list(range(5, 100))
        assert resume.asked[-1] == all_inputs(topics)
    finally:
        intake.close()


def test_a_second_member_takes_over_partitions_only_after_the_first_gave_them_up(
    kafka_bootstrap: str, topics: Topics
) -> None:
    produce(kafka_bootstrap, topics, [f.confirmed(f"p{i}", 100, 0) for i in range(20)])
    group = f"intake-{uuid.uuid4().hex[:8]}"
    first_resume, second_resume = Resume(), Resume()
    first = start(kafka_bootstrap, topics, first_resume, group)
    stop = threading.Event()
    try:
        read(first, 20)
        # The first member must keep polling: it answers the rebalance from inside its poll.
        polling = threading.Thread(target=lambda: [first.poll(200) for _ in iter(stop.is_set, True)])
        polling.start()
        second = start(kafka_bootstrap, topics, second_resume, group)

        def shared_out() -> bool:
            mine, theirs = set(first.assignment()), set(second.assignment())
            return bool(mine and theirs) and mine | theirs == set(all_inputs(topics))

        try:
            # Until both hold partitions: the group may rebalance more than once on the way
            # (the leader rejoins when its metadata changed since it assigned).
            deadline = time.monotonic() + 60
            while not shared_out() and time.monotonic() < deadline:
                second.poll(200)
            stop.set()
            polling.join(10)
            mine, theirs = set(first.assignment()), set(second.assignment())
            assert mine and theirs and not mine & theirs
            assert mine | theirs == set(all_inputs(topics))
            # Asked for its partitions each time it was given them (the same ones each time).
            assert second_resume.asked and all(asked == sorted(theirs) for asked in second_resume.asked)
            assert first_resume.asked[-1] == sorted(mine)  # asked again after giving some up
        finally:
            second.close()
    finally:
        stop.set()
        first.close()


def test_an_intake_on_input_topics_that_do_not_exist_refuses_to_start(kafka_bootstrap: str) -> None:
    nowhere = Topics(prefix=f"missing{time.time_ns()}.")
    with pytest.raises(
        IntakeBroken, match=r"input topics \[.*missing\d+\.charity\.donations.*\] do not exist"
    ):
        start(kafka_bootstrap, nowhere, Resume())


def test_the_intake_runs_at_a_lower_priority_than_the_batch_loop(
    kafka_bootstrap: str, topics: Topics
) -> None:
    intake = start(kafka_bootstrap, topics, Resume())
    try:
        assert intake.pid is not None
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, intake.pid) == min(19, ours + HELPER_NICENESS)
    finally:
        intake.close()


def test_a_dead_intake_stops_the_ledger_with_intake_broken(kafka_bootstrap: str, topics: Topics) -> None:
    intake = start(kafka_bootstrap, topics, Resume())
    try:
        assert intake.pid is not None
        os.kill(intake.pid, signal.SIGKILL)
        with pytest.raises(IntakeBroken, match=r"intake process \(exit code -9\)"):
            intake.poll(5_000)
    finally:
        intake.close()


def test_a_ledger_that_vanishes_leaves_an_intake_that_exits(kafka_bootstrap: str, topics: Topics) -> None:
    produce(kafka_bootstrap, topics, one_partition_gifts(10))
    intake = start(kafka_bootstrap, topics, Resume())
    read(intake, 10)
    # What a kill -9 of the ledger does to the pipes: its ends close, nothing said.
    intake._control.close()
    intake._batches.close()
    intake._process.join(30)
    assert intake._process.exitcode == 0


def test_an_intake_stuck_sending_a_batch_larger_than_the_pipe_still_stops_at_once(
    kafka_bootstrap: str, topics: Topics
) -> None:
    # Dead letters of 16 kB, 100 a batch: 1.6 MB batches, more than the pipe holds (1 MiB).
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5, max_request_size=4 << 20)
    for _ in range(300):
        producer.send(topics.donations, key=b"p1", value=b"\x00" * 16_384)
    producer.flush()
    producer.close()
    intake = start(kafka_bootstrap, topics, Resume(), max_records=100)
    first = read(intake, 1)  # the intake is up and reading; its next batch will not fit
    assert first[0][5] is not None and first[0][5].kind == "undecodable"
    time.sleep(2)
    started = time.monotonic()
    intake.close(timeout=20)
    assert intake._process.exitcode == 0 and time.monotonic() - started < 10
