"""Fault (d) of issue 15: kill -9 the active ledger under a steady load of gifts through the
API, on the local three-node cluster and PostgreSQL; the standby takes over.

Reports acknowledged, applied, lost (must be 0), applied twice (must be 0) and the recovery
time (from the kill to the first entry the standby committed); the compacted totals topic
must equal the database, a screen connected throughout must have listed each gift once, and
`verify` pass. Run by `make test-faults`, not by `make test`.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from services.api.main import build as build_api
from services.ledger.adapters.store import LedgerStore
from services.platform.db import make_engine
from services.platform.free_ports import free_ports
from services.platform.http_thread import serve_in_thread
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
from tests.fixtures.ledger import eventually, inputs_consumed, ledger_settings
from tests.ledger.test_ledger_integration import spawn_ledger, stop_process
from tests.ledger.test_standby import holder, journal_size

pytestmark = [pytest.mark.integration, pytest.mark.faults]


@pytest.mark.timeout(600)
def test_kill_9_the_active_ledger_under_load_and_the_standby_takes_over(
    kafka_cluster: LocalKafkaCluster, postgres_db: str, tmp_path: Path
) -> None:
    topics = fault_topics(kafka_cluster)
    bootstrap = kafka_cluster.bootstrap
    env = {
        "CHARITY_DATABASE_URL": postgres_db,
        "CHARITY_KAFKA_BOOTSTRAP": bootstrap,
        "CHARITY_TOPIC_PREFIX": topics.prefix,
        "CHARITY_TOPIC_REPLICATION_FACTOR": "3",
        "CHARITY_TOPIC_MIN_INSYNC_REPLICAS": "2",
        "CHARITY_LEDGER_GROUP": f"faults-{topics.prefix}",
        "CHARITY_LEDGER_INSTANCE_ID": "ledger-main",  # one role, two processes
        "CHARITY_SIGNING_KEY": str(tmp_path / "key.pem"),
        "CHARITY_CREATE_SIGNING_KEY": "true",
    }
    api_port = free_ports(1)[0]
    settings = ledger_settings(bootstrap, topics, postgres_db, api_port=api_port)
    LedgerStore(make_engine(postgres_db)).migrate()
    engine = make_engine(postgres_db)
    ledgers: list[subprocess.Popen[bytes]] = []

    def start_ledger() -> None:
        port = str(free_ports(1)[0])
        log = tmp_path / f"ledger-{len(ledgers)}.log"
        ledgers.append(spawn_ledger({**env, "CHARITY_LEDGER_HTTP_PORT": port}, log))

    def active() -> subprocess.Popen[bytes]:
        pid = int(holder(engine).rsplit(":", 1)[1])
        return next(p for p in ledgers if p.pid == pid)

    api = serve_in_thread(build_api(settings), "127.0.0.1", api_port)
    load = GiftLoad((f"http://127.0.0.1:{api_port}",), f"Bearer {settings.staff_token}")
    feeder = threading.Thread(target=load.run, daemon=True)
    with screen_connected(bootstrap, topics, tmp_path) as connected:
        try:
            start_ledger()
            open_projects(bootstrap, topics)
            eventually(lambda: api.started and inputs_consumed(engine, bootstrap, topics), timeout=120)
            start_ledger()  # the standby

            feeder.start()
            eventually(lambda: len(load.acknowledged) >= 5 * RATE, timeout=90, what="gifts flowing")
            victim = active()
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed_at, size_at_kill = time.monotonic(), journal_size(engine)
            eventually(lambda: journal_size(engine) > size_at_kill, timeout=60, what="the standby at work")
            recovery_s = time.monotonic() - killed_at
            start_ledger()  # the next standby
            eventually(lambda: time.monotonic() - killed_at > 10, timeout=30)
            applied = settle(load, feeder, engine, bootstrap, topics)
            screen = tally_screen(bootstrap, topics, engine, connected)
        finally:
            load.stop.set()
            api.should_exit = True
            for process in ledgers:
                if process.poll() is None:
                    stop_process(process)

    report = fault_report(
        "kill -9 the active ledger; the standby takes over",
        load,
        applied,
        recovery_s,
        tmp_path / "active-ledger-kill.json",
        screen,
    )
    assert report["acknowledged"] >= 10 * RATE
    assert_nothing_lost(report, screen, postgres_db)
