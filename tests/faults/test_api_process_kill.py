"""Fault (e) of issue 15: kill -9 one of two API processes under a steady load of gifts, on
the local three-node cluster and PostgreSQL. The load's client balances over both and sends
a failed try to the other one, as a load balancer that retries elsewhere would.

Reports acknowledged, applied, lost (must be 0), applied twice (must be 0) and the recovery
time (the longest a gift tried before the kill waited after it to be acknowledged); the
compacted totals topic must equal the database, a screen connected throughout must have
listed each gift once, and `verify` pass. Run by `make test-faults`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from services.platform.free_ports import free_ports
from services.platform.kafka_cluster import LocalKafkaCluster
from tests.fixtures.faults import (
    RATE,
    GiftLoad,
    assert_nothing_lost,
    fault_report,
    fault_topics,
    open_projects,
    screen_connected,
    settle,
    tally_screen,
)
from tests.fixtures.ledger import (
    eventually,
    inputs_consumed,
    ledger_settings,
    readyz,
    start_ledger,
    stop_ledger,
)
from tests.ledger.test_ledger_integration import stop_process

pytestmark = [pytest.mark.integration, pytest.mark.faults]
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_kill_9_one_of_two_api_processes_under_load(
    kafka_cluster: LocalKafkaCluster, postgres_db: str, tmp_path: Path
) -> None:
    topics = fault_topics(kafka_cluster)
    bootstrap = kafka_cluster.bootstrap
    settings = ledger_settings(bootstrap, topics, postgres_db, signing_key_path=str(tmp_path / "sth.pem"))
    ports = free_ports(2)
    env = {
        **os.environ,
        "CHARITY_DATABASE_URL": postgres_db,
        "CHARITY_KAFKA_BOOTSTRAP": bootstrap,
        "CHARITY_TOPIC_PREFIX": topics.prefix,
        "CHARITY_STAFF_TOKEN": settings.staff_token,
        "CHARITY_INTERNAL_DONATIONS_ENABLED": "true",
        "CHARITY_PAYMENT_PROVIDER": "none",
        "CHARITY_WEB_SECRET_PATH": str(tmp_path / "web-secret.key"),  # shared, as behind one balancer
        "CHARITY_DOCUMENTS_DIR": str(tmp_path / "documents"),
    }
    ledger = start_ledger(settings)
    engine = ledger.app.store.engine
    apis = [
        subprocess.Popen(
            [sys.executable, "-m", "services.cli", "api"],
            env={**env, "CHARITY_API_PORT": str(port)},
            stdout=(tmp_path / f"api-{port}.log").open("ab"),
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        for port in ports
    ]
    load = GiftLoad(tuple(f"http://127.0.0.1:{port}" for port in ports), f"Bearer {settings.staff_token}")
    feeder = threading.Thread(target=load.run, daemon=True)
    try:
        with screen_connected(bootstrap, topics, tmp_path) as connected:
            open_projects(bootstrap, topics)
            eventually(lambda: inputs_consumed(engine, bootstrap, topics), timeout=90, what="projects open")
            eventually(lambda: all(readyz(port) == 200 for port in ports), timeout=90, what="both APIs ready")

            feeder.start()
            eventually(lambda: len(load.acknowledged) >= 5 * RATE, timeout=90, what="gifts flowing")
            killed_at = time.monotonic()
            apis[0].kill()
            apis[0].wait()
            after_kill = load.acknowledged_after
            eventually(lambda: len(after_kill(killed_at)) >= 5 * RATE, timeout=90, what="gifts go on")
            applied = settle(load, feeder, engine, bootstrap, topics)
            ledger.app.signer.publish_if_grown()
            screen = tally_screen(bootstrap, topics, engine, connected)
    finally:
        load.stop.set()
        for api in apis:
            if api.poll() is None:
                stop_process(api)
        stop_ledger(ledger)

    report = fault_report(
        "kill -9 one of two API processes behind a balancer that retries elsewhere",
        load,
        applied,
        max(load.caught_by(killed_at), default=0.0),
        tmp_path / "api-process-kill.json",
        screen,
    )
    assert report["acknowledged"] >= 10 * RATE
    assert_nothing_lost(report, screen, postgres_db)
