"""Fault (a) of issue 15: kill -9 the leader of a donations partition under a steady load of
gifts through the API, on the local three-node cluster and PostgreSQL; restart it later.

Reports acknowledged, applied, lost (must be 0), applied twice (must be 0) and the recovery
time (from the kill to the first gift of the killed leader's partition the API acknowledged
again); the compacted totals topic must equal the database, a screen connected throughout
must have listed each gift once, and `verify` pass. Run by `make test-faults`, not by
`make test`.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from services.platform.kafka_cluster import LocalKafkaCluster
from tests.fixtures.faults import (
    PROJECTS,
    RATE,
    assert_nothing_lost,
    fault_report,
    gifts_flowing,
    partition_of,
)
from tests.fixtures.ledger import eventually

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.mark.timeout(600)
def test_kill_9_the_leader_of_a_donations_partition_under_load(
    kafka_cluster: LocalKafkaCluster, postgres_db: str, tmp_path: Path
) -> None:
    with gifts_flowing(kafka_cluster, postgres_db, tmp_path) as rig:
        topics, load = rig.topics, rig.load
        project = PROJECTS[0]
        partition = partition_of(project)
        states = kafka_cluster.partitions([topics.donations])
        leader = next(p.leader for p in states if p.partition == partition)
        killed_at = time.monotonic()
        kafka_cluster.kill(leader)
        eventually(
            lambda: load.acknowledged_after(killed_at, project), timeout=120, what="gifts acknowledged again"
        )
        again = load.acknowledged_after(killed_at, project)[0]
        # The cluster goes on with two nodes for a while.
        eventually(lambda: time.monotonic() - killed_at > 15, timeout=30)

        kafka_cluster.node(leader).start(timeout=120.0)
        eventually(
            lambda: all(leader in p.isr for p in kafka_cluster.partitions([topics.donations])),
            timeout=120,
            what="the node back in every ISR",
        )
        restarted_at = time.monotonic()
        eventually(lambda: time.monotonic() - restarted_at > 5, timeout=30)  # and on three again
        applied = rig.settle()
        screen = rig.tally_screen()

    report = fault_report(
        "kill -9 the leader of a donations partition, restart it 15 s later",
        load,
        applied,
        again - killed_at,
        tmp_path / "partition-leader-kill.json",
        screen,
    )
    assert report["acknowledged"] >= 20 * RATE
    assert_nothing_lost(report, screen, postgres_db)
