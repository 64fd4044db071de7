"""How each topic of the catalogue is created."""

from __future__ import annotations

from services.contracts.topics import FEED_RETENTION_MS, Topics
from services.platform.kafka_admin import topic_request


def test_each_topic_keeps_its_records_as_long_as_it_should() -> None:
    topics = Topics("")
    by_name = {spec.name: topic_request(spec)["configs"] for spec in topics.specs()}
    assert by_name[topics.journal] == {"retention.ms": "-1", "retention.bytes": "-1"}  # the order of record
    assert by_name[topics.feed] == {"retention.ms": str(FEED_RETENTION_MS)}  # personal text ages out
    assert by_name[topics.totals]["cleanup.policy"] == "compact"
    assert by_name[topics.donations] == {}  # the broker's default
