"""Fault (f) of issue 15, as this machine allows it: the ledger's database refuses writes for
15 s under a steady load of gifts through the API, on the local three-node cluster and
PostgreSQL. Mounting a small filesystem to fill is not allowed here, so the database is made
read-only instead (`default_transaction_read_only` on, every session terminated), then
writable again (and the sessions terminated once more).

Reports acknowledged, applied, lost (must be 0), applied twice (must be 0) and the recovery
time (from the database taking writes again to the ledger's first entry after it); the
compacted totals topic must equal the database and `verify` pass. Run by `make test-faults`.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from services.api.main import build as build_api
from services.ledger.ops.commands import verify_command
from services.platform.free_ports import free_ports
from services.platform.http_thread import serve_in_thread
from services.platform.kafka_cluster import LocalKafkaCluster
from tests.fixtures.faults import RATE, GiftLoad, fault_report, fault_topics, open_projects, settle
from tests.fixtures.ledger import eventually, inputs_consumed, ledger_settings, start_ledger, stop_ledger
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
    topics = fault_topics(kafka_cluster)
    bootstrap = kafka_cluster.bootstrap
    api_port = free_ports(1)[0]
    settings = ledger_settings(
        bootstrap, topics, postgres_db, signing_key_path=str(tmp_path / "sth.pem"), api_port=api_port
    )
    ledger = start_ledger(settings)
    api = serve_in_thread(build_api(settings), "127.0.0.1", api_port)
    engine = ledger.app.store.engine
    load = GiftLoad((f"http://127.0.0.1:{api_port}",), f"Bearer {settings.staff_token}")
    feeder = threading.Thread(target=load.run, daemon=True)
    try:
        open_projects(bootstrap, topics)
        eventually(lambda: api.started and inputs_consumed(engine, bootstrap, topics), timeout=90)
        feeder.start()
        eventually(lambda: len(load.acknowledged) >= 5 * RATE, timeout=90, what="gifts flowing")

        set_read_only(postgres_url, postgres_db, True)
        refused_at = time.monotonic()
        eventually(lambda: time.monotonic() - refused_at > 15, timeout=30)
        assert ledger.thread.is_alive()  # waiting, not dead
        size = journal_size(engine)
        set_read_only(postgres_url, postgres_db, False)
        writable_at = time.monotonic()
        eventually(lambda: journal_size(engine) > size, timeout=120, what="entries committed again")
        recovery_s = time.monotonic() - writable_at
        eventually(lambda: time.monotonic() - writable_at > 5, timeout=30)
        applied = settle(load, feeder, engine, bootstrap, topics)
        ledger.app.signer.publish_if_grown()
    finally:
        load.stop.set()
        api.should_exit = True
        stop_ledger(ledger)

    report = fault_report(
        "the database refuses writes for 15 s (read-only, sessions ended), then takes them again",
        load,
        applied,
        recovery_s,
        tmp_path / "database-refuses-writes.json",
    )
    assert report["lost"] == 0 and report["applied_twice"] == 0, report
    assert verify_command(database_url=postgres_db, quiet=True) == 0
