"""Kafka's tools see where the ledger is, while the database alone says where it resumes."""

from __future__ import annotations

import pytest
from kafka import OffsetAndMetadata, TopicPartition
from kafka.admin import MemberToRemove
from prometheus_client import REGISTRY
from sqlalchemy import Engine, func, select

from services.contracts.topics import Topics
from services.ledger.adapters import tables
from services.ledger.service.records import Partition
from services.platform.kafka_admin import admin_client
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


def test_kafka_holds_the_databases_offsets_but_a_restart_resumes_from_the_database(
    kafka_bootstrap: str, topics: Topics, db_url: str
) -> None:
    settings = ledger_settings(kafka_bootstrap, topics, db_url)
    group = settings.ledger_group
    events = [*f.opened_project("p1"), *f.opened_project("p2")]
    events += [f.confirmed(project, 100 + i, 0) for i in range(20) for project in ("p1", "p2")]
    running = start_ledger(settings)
    engine = running.app.store.engine
    try:
        produce(kafka_bootstrap, topics, events)
        eventually(lambda: inputs_consumed(engine, kafka_bootstrap, topics), what="inputs consumed")
        stored = database_offsets(engine, group)
        assert sum(stored.values()) == len(events)
        eventually(
            lambda: kafka_offsets(kafka_bootstrap, group) == stored,
            what="Kafka's group offsets equal to the database's",
        )
    finally:
        stop_ledger(running)
    applied = journal_entries(engine)
    assert applied == len(events)

    # Kafka's offsets set back to the beginning: a ledger that resumed from them would
    # read every event again (and skip each as a duplicate).
    with admin_client(kafka_bootstrap, 10.0) as admin:
        # A static member does not leave its group when it stops: it is removed here.
        admin.remove_group_members(group, [MemberToRemove(group_instance_id=settings.ledger_instance_id)])
        errors = admin.alter_group_offsets(
            group, {TopicPartition(topic, part): OffsetAndMetadata(0, "", -1) for topic, part in stored}
        )
    assert {error.__name__ for error in errors.values()} == {"NoError"}
    assert set(kafka_offsets(kafka_bootstrap, group).values()) == {0}

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
