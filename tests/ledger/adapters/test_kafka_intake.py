"""The intake's offset commits to Kafka: only the partitions it holds, never fatal."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from kafka import OffsetAndMetadata, TopicPartition
from kafka.errors import CommitFailedError

from services.contracts.topics import Topics
from services.ledger.adapters.kafka_intake import KafkaIntake

TOPICS = Topics("")


class _Consumer:
    """Enough of a KafkaConsumer for KafkaIntake: a subscription, an assignment, commits."""

    def __init__(self, assigned: list[tuple[str, int]], fail_with: Exception | None = None) -> None:
        self._coordinator = SimpleNamespace(need_rejoin=lambda: False, rejoin_needed=False)
        self.assigned = {TopicPartition(topic, part) for topic, part in assigned}
        self.fail_with = fail_with
        self.commits: list[dict[TopicPartition, OffsetAndMetadata]] = []
        self.callbacks: list[Any] = []

    def subscribe(self, topics: list[str], listener: object) -> None:
        pass

    def topics(self) -> set[str]:
        return set(TOPICS.inputs)

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def commit_async(self, offsets: dict[TopicPartition, OffsetAndMetadata], callback: Any) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.commits.append(offsets)
        self.callbacks.append(callback)


def _intake(consumer: _Consumer) -> KafkaIntake:
    return KafkaIntake(consumer, TOPICS, on_assigned=lambda _: {}, on_revoked=lambda: None)  # type: ignore[arg-type]


def test_only_the_partitions_this_member_holds_are_committed() -> None:
    consumer = _Consumer([(TOPICS.donations, 0), (TOPICS.donations, 1)])
    failures: list[str] = []
    _intake(consumer).commit_async(
        {(TOPICS.donations, 0): 12, (TOPICS.donations, 1): 7, (TOPICS.donations, 2): 99}, failures.append
    )
    assert consumer.commits == [
        {
            TopicPartition(TOPICS.donations, 0): OffsetAndMetadata(12, "", -1),
            TopicPartition(TOPICS.donations, 1): OffsetAndMetadata(7, "", -1),
        }
    ]
    consumer.callbacks[0](consumer.commits[0], object())  # the coordinator took them
    assert failures == []


def test_a_refused_commit_is_reported_not_raised() -> None:
    consumer = _Consumer([(TOPICS.projects, 0)])
    failures: list[str] = []
    intake = _intake(consumer)
    intake.commit_async({(TOPICS.projects, 0): 3}, failures.append)
    consumer.callbacks[0]({}, CommitFailedError("the group rebalanced"))  # from a later poll
    consumer.fail_with = RuntimeError("no coordinator yet")
    intake.commit_async({(TOPICS.projects, 0): 4}, failures.append)
    assert [failure.split(":")[0] for failure in failures] == ["CommitFailedError", "RuntimeError"]
    intake.commit_async({(TOPICS.projects, 1): 4}, failures.append)  # not ours: nothing to commit
    assert len(failures) == 2
