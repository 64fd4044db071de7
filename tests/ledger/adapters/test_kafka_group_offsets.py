"""Kafka's tools see where the ledger is, while the database alone says where it resumes:
with Kafka's group offsets set back, or ahead."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.admin import MemberToRemove
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select

from services.contracts.events import Event
from services.contracts.topics import Topics
from services.ledger.adapters import tables
from services.ledger.service.records import Partition
from services.platform.kafka_admin import admin_client
from services.platform.settings import Settings
from tests.fixtures import factories as f
from tests.fixtures.ledger import eventually, inputs_consumed, ledger_settings, start_ledger, stop_ledger
from tests.ledger.test_ledger_integration import produce

pytestmark = pytest.mark.integration


def database_offsets(engine: Engine, group: str) -> dict[Partition, int]:
    offsets = tables.consumer_offsets
    with engine.connect() as conn:
        rows = conn.execute(
            select(offsets.c.topic, offsets.c.partition, offsets.c.next_offset).where(
                offsets.c.group_id == group
            )
        ).all()
    return {(row.topic, row.partition): row.next_offset for row in rows}


def kafka_offsets(bootstrap: str, group: str) -> dict[Partition, int]:
    with admin_client(bootstrap, 10.0) as admin:
        committed = admin.list_group_offsets({group: None})[group]
    return {(tp.topic, tp.partition): meta.offset for tp, meta in committed.items() if meta.offset >= 0}


def journal_entries(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.journal)).scalar_one())


def duplicates_so_far() -> float:
    return REGISTRY.get_sample_value("ledger_duplicate_events_total") or 0.0


def applied_and_seen_by_kafka(
    settings: Settings, topics: Topics, events: list[Event]
) -> tuple[Engine, dict[Partition, int]]:
    """A ledger run until `events` are applied and Kafka's group offsets equal the
    database's, then stopped: its engine and the offsets."""
    bootstrap, group = settings.kafka_bootstrap, settings.ledger_group
    running = start_ledger(settings)
    engine = running.app.store.engine
    try:
        produce(bootstrap, topics, events)
        eventually(lambda: inputs_consumed(engine, bootstrap, topics), what="inputs consumed")
        stored = database_offsets(engine, group)
        eventually(
            lambda: kafka_offsets(bootstrap, group) == stored,
            what="Kafka's group offsets equal to the database's",
        )
    finally:
        stop_ledger(running)
    return engine, stored


def set_kafka_offsets(settings: Settings, offsets: dict[Partition, int]) -> None:
    """The stopped ledger's group offsets on Kafka set to `offsets`."""
    group = settings.ledger_group
    with admin_client(settings.kafka_bootstrap, 10.0) as admin:
        # A static member does not leave its group when it stops: it is removed here.
        admin.remove_group_members(group, [MemberToRemove(group_instance_id=settings.ledger_instance_id)])
        errors = admin.alter_group_offsets(
            group,
            {
                TopicPartition(topic, part): OffsetAndMetadata(at, "", -1)
                for (topic, part), at in offsets.items()
            },
        )
    assert {error.__name__ for error in errors.values()} == {"NoError"}
    assert kafka_offsets(settings.kafka_bootstrap, group) == offsets


def test_kafka_holds_the_databases_offsets_but_a_restart_resumes_from_the_database(
    kafka_bootstrap: str, topics: Topics, db_url: str
) -> None:
    settings = ledger_settings(kafka_bootstrap, topics, db_url)
    group = settings.ledger_group
    events = [*f.opened_project("p1"), *f.opened_project("p2")]
    events += [f.confirmed(project, 100 + i, 0) for i in range(20) for project in ("p1", "p2")]
    engine, stored = applied_and_seen_by_kafka(settings, topics, events)
    assert sum(stored.values()) == len(events)
    applied = journal_entries(engine)
    assert applied == len(events)

    # Kafka's offsets set back to the beginning: a ledger that resumed from them would
    # read every event again (and skip each as a duplicate).
    set_kafka_offsets(settings, dict.fromkeys(stored, 0))

    duplicates = duplicates_so_far()
    running = start_ledger(settings)
    engine = running.app.store.engine
    try:
        produce(kafka_bootstrap, topics, [f.confirmed("p1", 999, 0)])
        eventually(lambda: inputs_consumed(engine, kafka_bootstrap, topics), what="the new gift consumed")
        stored = database_offsets(engine, group)
        eventually(
            lambda: kafka_offsets(kafka_bootstrap, group) == stored,
            what="Kafka's group offsets equal to the database's again",
        )
    finally:
        stop_ledger(running)
    assert journal_entries(engine) == applied + 1
    assert duplicates_so_far() == duplicates  # nothing was read again


def end_offsets(bootstrap: str, partitions: Iterable[Partition]) -> dict[Partition, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, part) for topic, part in partitions])
    finally:
        consumer.close()
    return {(tp.topic, tp.partition): end for tp, end in ends.items()}


def test_kafka_offsets_ahead_of_the_databases_skip_nothing_the_database_has_not_applied(
    kafka_bootstrap: str, topics: Topics, db_url: str
) -> None:
    settings = ledger_settings(kafka_bootstrap, topics, db_url)
    projects = ("p1", "p2")
    events = [*f.opened_project("p1"), *f.opened_project("p2")]
    events += [f.confirmed(project, 100 + i, 0) for i in range(10) for project in projects]
    engine, stored = applied_and_seen_by_kafka(settings, topics, events)
    applied = journal_entries(engine)

    # Gifts sent while the ledger is down, and Kafka's group offsets moved past them, to the
    # end of each partition: a ledger that resumed from Kafka's offsets would never apply them.
    between: list[Event] = [f.confirmed(project, 500 + i, 0) for i in range(15) for project in projects]
    produce(kafka_bootstrap, topics, between)
    ahead = end_offsets(kafka_bootstrap, stored)
    assert sum(ahead.values()) - sum(stored.values()) == len(between)
    set_kafka_offsets(settings, ahead)

    duplicates = duplicates_so_far()
    running = start_ledger(settings)
    engine = running.app.store.engine
    try:
        eventually(
            lambda: inputs_consumed(engine, kafka_bootstrap, topics),
            what="the gifts between the database's offsets and Kafka's consumed",
        )
        assert database_offsets(engine, settings.ledger_group) == ahead
    finally:
        stop_ledger(running)
    # Each gift in between applied once: none skipped, none read twice.
    with engine.connect() as conn:
        ids = conn.scalar(select(func.count(func.distinct(tables.journal.c.entry_id))))
        gifts = conn.scalar(select(func.sum(tables.project_totals.c.donations_count)))
    assert journal_entries(engine) == ids == applied + len(between)
    assert gifts == 10 * len(projects) + len(between)
    assert duplicates_so_far() == duplicates
