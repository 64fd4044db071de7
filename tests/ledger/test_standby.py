"""Two ledgers on one PostgreSQL: exactly one writes; the standby takes over when it dies."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer
from sqlalchemy import Engine, func, select

from services.contracts.codec import EventCodec
from services.contracts.topics import Topics
from services.ledger.adapters import tables as t
from services.ledger.adapters.store import LedgerStore
from services.ledger.ops.commands import registered_keys
from services.ledger.ops.verify import verify
from services.platform.db import make_engine
from services.platform.scratch_postgres import scratch_database
from tests.fixtures import factories as f
from tests.fixtures.kafka import free_ports
from tests.fixtures.ledger import eventually, inputs_consumed
from tests.ledger.test_ledger_integration import produce, spawn_ledger, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]
codec = EventCodec()
N_GIFTS = 12_000
KILLS = 3
PROJECTS = [f"standby-{i}" for i in range(6)]


@pytest.fixture
def shared_db(postgres_url: str) -> Iterator[str]:
    with scratch_database(postgres_url, "standby") as url:
        yield url


def journal_size(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(t.journal)) or 0)


def holder(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.scalar(select(t.writer_lease.c.holder)))


def test_one_writer_at_a_time_and_the_standby_takes_over(
    kafka_bootstrap: str, topics: Topics, shared_db: str, tmp_path: Path
) -> None:
    base_env = {
        "CHARITY_DATABASE_URL": shared_db,
        "CHARITY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CHARITY_TOPIC_PREFIX": topics.prefix,
        "CHARITY_LEDGER_GROUP": f"standby-{topics.prefix}",
        # One role, two processes: the one that holds the lease is the group member.
        "CHARITY_LEDGER_INSTANCE_ID": "ledger-main",
        "CHARITY_SIGNING_KEY": str(tmp_path / "key.pem"),
        "CHARITY_CREATE_SIGNING_KEY": "true",
    }
    LedgerStore(make_engine(shared_db)).migrate()
    engine = make_engine(shared_db)
    processes: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        env = {**base_env, "CHARITY_LEDGER_HTTP_PORT": str(free_ports(1)[0])}
        process = spawn_ledger(env, tmp_path / f"ledger-{len(processes)}.log")
        processes.append(process)
        return process

    def active() -> subprocess.Popen[bytes]:
        pid = int(holder(engine).rsplit(":", 1)[1])
        return next(p for p in processes if p.pid == pid)

    rng = random.Random(20261206)
    gifts = [f.confirmed(rng.choice(PROJECTS), rng.randint(100, 50_000), 0) for _ in range(N_GIFTS)]

    def feed() -> None:  # about 200 gifts a second, for a minute
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
        for i, gift in enumerate(gifts):
            producer.send(topics.donations, key=gift.project_id.encode(), value=codec.encode(gift))
            if i % 100 == 0:
                time.sleep(0.5)
        producer.flush()
        producer.close()

    opened = 3 * len(PROJECTS)
    try:
        start()
        produce(kafka_bootstrap, topics, [e for p in PROJECTS for e in f.opened_project(p)])
        eventually(lambda: journal_size(engine) == opened, timeout=90, what="projects opened")
        start()  # the standby
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        takeovers: list[float] = []
        for _ in range(KILLS):
            before = journal_size(engine)
            eventually(lambda b=before: journal_size(engine) > b + 200, timeout=60, what="the active at work")
            victim = active()
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed_at = time.monotonic()
            eventually(lambda v=victim: f":{v.pid}" not in holder(engine), timeout=30, what="a new holder")
            after = journal_size(engine)
            eventually(lambda a=after: journal_size(engine) > a, timeout=30, what="the new active at work")
            takeovers.append(time.monotonic() - killed_at)
            start()  # the next standby
        # A paused active that wakes after losing the lease commits nothing, and stops.
        paused = active()
        paused.send_signal(signal.SIGSTOP)
        eventually(lambda: f":{paused.pid}" not in holder(engine), timeout=30, what="the standby took over")
        size_at_takeover = journal_size(engine)
        eventually(lambda: journal_size(engine) > size_at_takeover, timeout=30, what="the new active at work")
        paused.send_signal(signal.SIGCONT)
        assert paused.wait(timeout=60) != 0  # it exits, to come back as a standby
        feeder.join()
        eventually(lambda: journal_size(engine) >= opened + N_GIFTS, timeout=180, what="every gift applied")
        eventually(lambda: inputs_consumed(engine, kafka_bootstrap, topics), what="inputs consumed")
    finally:
        for process in processes:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                stop_process(process)
    log = (tmp_path / f"ledger-{processes.index(paused)}.log").read_text(errors="replace")
    assert "lost the writer lease" in log
    assert all(seconds < 10 for seconds in takeovers), takeovers
    with engine.connect() as conn:
        gifts_applied = conn.scalar(
            select(func.count()).select_from(t.journal).where(t.journal.c.kind == "DonationConfirmed")
        )
        distinct = conn.scalar(select(func.count(func.distinct(t.journal.c.entry_id))))
    assert gifts_applied == N_GIFTS and distinct == journal_size(engine) == opened + N_GIFTS
    report = verify(engine, registered_keys(engine))
    assert report.ok, report.problems
