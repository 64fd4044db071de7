"""How each topic of the catalogue is created: retention, layout and replication."""

from __future__ import annotations

import uuid

import pytest

from services.contracts.topics import FEED_RETENTION_MS, Topics, TopicSpec
from services.platform.kafka_admin import (
    Replication,
    TopicLayoutError,
    delete_topics,
    ensure_topics,
    replication_of,
    topic_request,
)
from services.platform.settings import Settings

SINGLE = {"min.insync.replicas": "1", "unclean.leader.election.enable": "false"}


def test_each_topic_keeps_its_records_as_long_as_it_should() -> None:
    topics = Topics("")
    by_name = {spec.name: topic_request(spec)["configs"] for spec in topics.specs()}
    assert by_name[topics.journal] == SINGLE | {"retention.ms": "-1", "retention.bytes": "-1"}  # of record
    assert by_name[topics.feed] == SINGLE | {"retention.ms": str(FEED_RETENTION_MS)}  # personal text ages
    assert by_name[topics.totals]["cleanup.policy"] == "compact"
    assert by_name[topics.donations] == SINGLE  # the broker's default retention


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
