"""Fault (c) of issue 15: restart PostgreSQL under a steady load of gifts through the API, on
the local three-node cluster: `pg_ctl restart -m fast` (sessions ended, a clean shutdown) and
`-m immediate` (a crash: the server recovers from its WAL when it starts again).

The shared test server (CHARITY_TEST_POSTGRES_URL) is never restarted: the ledger's database
is on a private cluster of this test's own (tests/fixtures/private_postgres.py). The API may
refuse gifts meanwhile (the load retries like a provider); only acknowledged gifts count.

Reports acknowledged, applied, lost (must be 0), applied twice (must be 0) and the recovery
time (from the server accepting connections again to the ledger's first entry after it); the
compacted totals topic must equal the database, a screen connected throughout must have
listed each gift once, and `verify` pass. Run by `make test-faults`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.platform.kafka_cluster import LocalKafkaCluster
from services.platform.scratch_postgres import scratch_database
from tests.fixtures.faults import assert_nothing_lost, fault_report, gifts_flowing
from tests.fixtures.ledger import eventually
from tests.fixtures.private_postgres import PrivatePostgres, ShutdownMode, private_postgres
from tests.ledger.test_standby import journal_size

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.fixture
def restartable_db() -> Iterator[tuple[PrivatePostgres, str]]:
    """A private PostgreSQL server and a database on it for the ledger."""
    with private_postgres() as server, scratch_database(server.url, "faults") as url:
        yield server, url


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_the_ledger_rides_out_a_postgres_restart(
    kafka_cluster: LocalKafkaCluster,
    restartable_db: tuple[PrivatePostgres, str],
    tmp_path: Path,
    mode: ShutdownMode,
) -> None:
    server, database_url = restartable_db
    with gifts_flowing(kafka_cluster, database_url, tmp_path) as rig:
        load, engine = rig.load, rig.engine
        server.pg_ctl("restart", mode)  # returns when it accepts connections again
        accepting_at, size = time.monotonic(), journal_size(engine)
        eventually(lambda: journal_size(engine) > size, timeout=120, what="entries committed again")
        recovery_s = time.monotonic() - accepting_at
        assert rig.ledger.thread.is_alive()
        eventually(lambda: time.monotonic() - accepting_at > 10, timeout=30)
        applied = rig.settle()
        screen = rig.tally_screen()

    report = fault_report(
        f"PostgreSQL restarted (pg_ctl restart -m {mode})",
        load,
        applied,
        recovery_s,
        tmp_path / f"postgres-restart-{mode}.json",
        screen,
    )
    assert_nothing_lost(report, screen, database_url)
