"""How each topic of the catalogue is created: retention, layout and replication."""

from __future__ import annotations

import time
import uuid
from typing import Any

import kafka.errors as kafka_errors
import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from services.contracts.topics import DAY_MS, FEED_RETENTION_MS, Topics, TopicSpec
from services.platform.kafka_admin import (
    Replication,
    TopicLayoutError,
    admin_client,
    delete_topics,
    described_when_ready,
    ensure_topics,
    replication_of,
    topic_request,
    unready_reason,
)
from services.platform.settings import Settings

SINGLE = {"min.insync.replicas": "1", "unclean.leader.election.enable": "false"}


def test_each_topic_keeps_its_records_as_long_as_it_should() -> None:
    topics = Topics("")
    by_name = {spec.name: topic_request(spec)["configs"] for spec in topics.specs()}
    assert by_name[topics.journal] == SINGLE | {"retention.ms": "-1", "retention.bytes": "-1"}  # of record
    assert by_name[topics.feed] == SINGLE | {"retention.ms": str(FEED_RETENTION_MS)}  # personal text ages
    assert by_name[topics.totals]["cleanup.policy"] == "compact"
    for name in topics.inputs:  # a week, whatever the cluster's default
        assert by_name[name] == SINGLE | {"retention.ms": str(7 * DAY_MS)}
    assert by_name[topics.dlq]["retention.ms"] == str(30 * DAY_MS)  # longer than the inputs
    # Kept as long as the journal: a restore from the journal topic checks every signed head on
    # the checkpoints topic with the key published there, which the ledger sends once per start.
    # A year's retention would drop the key of a ledger that ran for a year, and the restore would
    # refuse the heads it signed (or, given the key, restore heads verify cannot check).
    assert by_name[topics.checkpoints] == SINGLE | {"retention.ms": "-1", "retention.bytes": "-1"}


def test_a_cluster_keeps_three_copies_and_acknowledges_two() -> None:
    settings = Settings(topic_replication_factor=3, topic_min_insync_replicas=2)
    request = topic_request(TopicSpec("donations", 12), replication_of(settings))
    assert request["replication_factor"] == 3
    assert request["configs"] == {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}
    assert topic_request(TopicSpec("donations", 12))["replication_factor"] == 1  # the local broker


@pytest.mark.parametrize(("factor", "min_insync"), [(1, 2), (3, 0), (0, 0)])
def test_a_replication_that_cannot_hold_is_refused(factor: int, min_insync: int) -> None:
    with pytest.raises(ValueError, match=r"min\.insync\.replicas"):
        Replication(factor, min_insync)


def _described(name: str, leaders: list[int], error_code: int = 0) -> dict[str, Any]:
    partitions = [
        {"partition_index": i, "error_code": 0, "leader_id": leader, "replica_nodes": [1, 2, 3]}
        for i, leader in enumerate(leaders)
    ]
    return {"name": name, "error_code": error_code, "partitions": partitions}


def test_a_topic_is_ready_only_when_every_partition_has_a_leader() -> None:
    assert unready_reason(_described("t", [1, 2, 3])) is None
    assert unready_reason(None) == "not described"
    assert unready_reason(_described("t", [])) == "no partitions described"
    assert unready_reason(_described("t", [1, -1, 2, -1])) == "partitions [1, 3] have no leader"
    unknown = kafka_errors.UnknownTopicOrPartitionError.errno
    assert unready_reason(_described("t", [], error_code=unknown)) == "UnknownTopicOrPartitionError"


class _LaggingBrokers:
    """Admin answers as brokers give them: some not caught up with the controller yet."""

    def __init__(self, *answers: list[dict[str, Any]] | Exception) -> None:
        self.answers = list(answers)
        self.asked = 0

    def describe_topics(self, names: list[str]) -> list[dict[str, Any]]:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def test_the_layout_is_read_from_an_answer_in_which_the_topics_are_ready() -> None:
    ready = [_described("a", [1, 2]), _described("b", [3])]
    admin = _LaggingBrokers(
        kafka_errors.NodeNotReadyError("between connections"),
        [_described("a", [1, 2]), _described("b", [])],  # CI: b's partitions not known there yet
        [_described("a", [1, 2])],
        ready,
    )
    assert described_when_ready(admin, ["a", "b"], time.monotonic() + 30) == {"a": ready[0], "b": ready[1]}
    assert admin.asked == 4


def test_topics_never_ready_are_named_with_the_reason_when_time_is_up() -> None:
    admin = _LaggingBrokers([_described("a", [1]), _described("b", [-1])])
    reason = r"topics not ready in time: \{'b': 'partitions \[0\] have no leader'\}"
    with pytest.raises(TimeoutError, match=reason):
        described_when_ready(admin, ["a", "b"], time.monotonic() + 0.3)
    assert admin.asked > 1  # it kept asking until the deadline


def test_an_error_that_asking_again_will_not_cure_is_raised_at_once() -> None:
    admin = _LaggingBrokers(kafka_errors.TopicAuthorizationFailedError("not allowed"))
    with pytest.raises(kafka_errors.TopicAuthorizationFailedError):
        described_when_ready(admin, ["a"], time.monotonic() + 30)
    assert admin.asked == 1


@pytest.mark.integration
def test_the_broker_keeps_each_topic_as_the_catalogue_says(kafka_bootstrap: str, topics: Topics) -> None:
    names = [spec.name for spec in topics.specs()]
    with admin_client(kafka_bootstrap, 20.0) as admin:
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names], config_filter="all"
        )
    configs = {
        name: {key: entry["value"] for key, entry in entries.items()}
        for name, entries in described["topic"].items()
    }
    week, month = str(7 * DAY_MS), str(30 * DAY_MS)
    retention = {name: configs[name]["retention.ms"] for name in names}
    assert retention == {
        topics.projects: week,
        topics.donations: week,
        topics.disbursements: week,
        topics.totals: week,  # compacted: the latest total per project stays whatever its age
        topics.feed: week,
        topics.outcomes: week,
        topics.checkpoints: "-1",
        topics.journal: "-1",
        topics.dlq: month,
    }
    assert {configs[name]["retention.bytes"] for name in (topics.journal, topics.checkpoints)} == {"-1"}
    assert configs[topics.totals]["cleanup.policy"] == "compact"
    assert {configs[name]["cleanup.policy"] for name in names if name != topics.totals} == {"delete"}


@pytest.mark.integration
def test_on_one_broker_three_copies_are_refused_and_an_existing_topic_is_checked(
    kafka_bootstrap: str,
) -> None:
    name = f"replication-{uuid.uuid4().hex[:8]}"
    try:
        with pytest.raises(RuntimeError, match=r"could not create topics: .*(?i:replication)"):
            ensure_topics(kafka_bootstrap, [TopicSpec(name, 2)], timeout=20.0, replication=Replication(3, 2))
        ensure_topics(kafka_bootstrap, [TopicSpec(name, 2)], timeout=20.0)  # one copy: the local broker
        # Asked again for three, the topic of one copy is not taken as it is.
        with pytest.raises(TopicLayoutError, match=f"{name} has 1 replicas, expected 3"):
            ensure_topics(kafka_bootstrap, [TopicSpec(name, 2)], timeout=20.0, replication=Replication(3, 2))
    finally:
        delete_topics(kafka_bootstrap, [name])
