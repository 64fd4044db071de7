"""Reading the input topics from Kafka: the consumer group member that fetches records.

Decoding and validation (`service.records.Reader`) run here too, before the
batch's transaction, in the intake process (`intake_process.IntakeProcess`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, OffsetAndMetadata, TopicPartition

from services.contracts.topics import Topics
from services.ledger.service.records import Partition, Positions, Reader, ReadRecord

log = logging.getLogger(__name__)


def make_consumer(
    bootstrap: str, group_id: str, fetch_max_wait_ms: int = 50, **overrides: Any
) -> KafkaConsumer:
    config: dict[str, Any] = dict(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
        # A missing input topic is an error to report, never one to create with
        # the broker's defaults (one partition) just by subscribing to it.
        allow_auto_create_topics=False,
        # How long the broker holds a fetch that finds no records (with any, it
        # answers at once: batches are what has piled up since the last poll).
        fetch_max_wait_ms=fetch_max_wait_ms,
        client_id="charity-ledger",
    )
    config.update(overrides)
    return KafkaConsumer(**config)


def _keep_rejoin_requested(consumer: KafkaConsumer) -> None:
    """Work around kafka-python 3.0.12 losing a rejoin that a metadata change started.

    The consumer coordinator decides to rejoin when the partitions of a subscribed
    topic change (its metadata snapshot no longer equals the one the assignment was
    made from), without setting the base coordinator's `rejoin_needed`. If the join
    then completes after the poll that started it has timed out, the completed join
    makes the snapshots equal again, `need_rejoin()` turns false, the join's result
    is never taken up, and the member holds nothing from then on. The Java client
    fixed the same race by requesting the rejoin explicitly (KAFKA-9815); this does
    that here: a rejoin, once wanted, stays wanted until a join has been completed
    inside a poll. It touches the coordinator's internals on purpose. The startup
    form of the race failed CI (the join the first metadata refresh forced); the
    later form (partitions added while the ledger is busy) was found by reading the
    code and is not reproduced by a test here.
    """
    coordinator = consumer._coordinator
    wants_rejoin = coordinator.need_rejoin

    def need_rejoin() -> bool:
        needed = bool(wants_rejoin())
        if needed and not coordinator.rejoin_needed:
            coordinator.request_rejoin()
        return needed

    coordinator.need_rejoin = need_rejoin


class _Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, intake: KafkaIntake) -> None:
        self._intake = intake

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        log.info("partitions revoked: %s", sorted(str(tp) for tp in revoked))
        self._intake.on_revoked()

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        partitions = sorted((tp.topic, tp.partition) for tp in assigned)
        positions = self._intake.on_assigned(partitions)
        self._intake.seek(positions)
        log.info("assigned %d partitions, resuming from stored offsets %s", len(partitions), positions)


class KafkaIntake:
    """The group member that reads the input topics, and its `Reader`.

    The next offset of each partition lives in the ledger database, written in
    the same transaction as the entries. Whoever runs this says where to resume
    (`on_assigned`, called inside `poll` when the group hands out partitions) and
    when the batches read so far are all committed (`on_revoked`, before they go
    to another member). Offsets committed to Kafka (`commit_async`) are only for
    Kafka's tools to see: reading never resumes from them.
    """

    def __init__(
        self,
        consumer: KafkaConsumer,
        topics: Topics,
        on_assigned: Callable[[list[Partition]], Positions],
        on_revoked: Callable[[], None],
    ) -> None:
        self.consumer = consumer
        self.reader = Reader(topics)
        self.on_assigned = on_assigned
        self.on_revoked = on_revoked
        inputs = list(topics.inputs)
        _keep_rejoin_requested(consumer)
        consumer.subscribe(topics=inputs, listener=_Rebalances(self))
        # Fetch metadata after subscribing and before the first poll joins the
        # group. The leader's assignment then already knows every subscribed
        # partition; otherwise the metadata arriving just after the join looks like
        # a partition change and forces a second rebalance, the one kafka-python
        # can lose (see _keep_rejoin_requested).
        missing = sorted(set(inputs) - set(consumer.topics()))
        if missing:
            raise RuntimeError(
                f"input topics {missing} do not exist (create them: charity-ledger kafka topics)"
            )

    def poll(self, timeout_ms: int, max_records: int) -> list[ReadRecord]:
        polled = self.consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        read = self.reader.read
        return [
            read(m.topic, m.partition, m.offset, m.key, m.value)
            for messages in polled.values()
            for m in messages
        ]

    def seek(self, positions: Positions) -> None:
        """Resume the assigned partitions among `positions` there; others are no longer ours."""
        assigned = self.consumer.assignment()
        for (topic, partition), offset in positions.items():
            tp = TopicPartition(topic, partition)
            if tp not in assigned:
                continue
            if offset is None:
                self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)

    def assignment(self) -> list[Partition]:
        return sorted((tp.topic, tp.partition) for tp in self.consumer.assignment())

    def commit_async(self, offsets: dict[Partition, int], on_failure: Callable[[str], None]) -> None:
        """Commit the offsets of the partitions this member holds to Kafka, without waiting;
        `on_failure(reason)` is called (from a later poll) if the coordinator refuses them."""
        assigned = self.consumer.assignment()
        commits = {
            tp: OffsetAndMetadata(offset, "", -1)
            for (topic, partition), offset in offsets.items()
            if (tp := TopicPartition(topic, partition)) in assigned
        }
        if not commits:
            return

        def done(_: object, response: object) -> None:
            if isinstance(response, Exception):
                on_failure(f"{type(response).__name__}: {response}")

        try:
            self.consumer.commit_async(commits, callback=done)
        except Exception as exc:  # e.g. no coordinator known yet: the next batch commits again
            on_failure(f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        self.consumer.close(autocommit=False)
