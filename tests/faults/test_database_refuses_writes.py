"""Fault (f) of issue 15, as this machine allows it: the ledger's database refuses writes for
15 s under a steady load of gifts through the API, on the local three-node cluster and
PostgreSQL. Mounting a small filesystem to fill is not allowed here, so the database is made
read-only instead (`default_transaction_read_only` on, every session terminated), then
writable again (and the sessions terminated once more).

Reports acknowledged, applied, lost (must be 0), applied twice (must be 0) and the recovery
time (from the database taking writes again to the ledger's first entry after it); the
compacted totals topic must equal the database, a screen connected throughout must have
listed each gift once, and `verify` pass. Run by `make test-faults`.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.platform.kafka_cluster import LocalKafkaCluster
from tests.fixtures.faults import assert_nothing_lost, fault_report, gifts_flowing
from tests.fixtures.ledger import eventually
from tests.ledger.test_standby import journal_size

pytestmark = [pytest.mark.integration, pytest.mark.faults]


def set_read_only(postgres_url: str, database_url: str, read_only: bool) -> None:
    """Make the database refuse (or take) writes for every new session, and end the open ones."""
    name = make_url(database_url).database
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            setting = "SET" if read_only else "RESET"
            setting += " default_transaction_read_only" + (" = on" if read_only else "")
            conn.execute(text(f'ALTER DATABASE "{name}" {setting}'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )
    finally:
        admin.dispose()


@pytest.mark.timeout(600)
def test_the_ledger_waits_out_a_database_that_refuses_writes(
    kafka_cluster: LocalKafkaCluster, postgres_url: str, postgres_db: str, tmp_path: Path
) -> None:
    with gifts_flowing(kafka_cluster, postgres_db, tmp_path) as rig:
        load, engine = rig.load, rig.engine
        set_read_only(postgres_url, postgres_db, True)
        refused_at = time.monotonic()
        eventually(lambda: time.monotonic() - refused_at > 15, timeout=30)
        assert rig.ledger.thread.is_alive()  # waiting, not dead
        size = journal_size(engine)
        set_read_only(postgres_url, postgres_db, False)
        writable_at = time.monotonic()
        eventually(lambda: journal_size(engine) > size, timeout=120, what="entries committed again")
        recovery_s = time.monotonic() - writable_at
        eventually(lambda: time.monotonic() - writable_at > 5, timeout=30)
        applied = rig.settle()
        screen = rig.tally_screen()

    report = fault_report(
        "the database refuses writes for 15 s (read-only, sessions ended), then takes them again",
        load,
        applied,
        recovery_s,
        tmp_path / "database-refuses-writes.json",
        screen,
    )
    assert_nothing_lost(report, screen, postgres_db)
