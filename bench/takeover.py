"""How long a standby ledger takes to take over from a ledger killed with kill -9.

Two real ledger processes on one SQLite database, the same group and static
member id: the first holds the writer lease, the second stands by. The first is
killed; a gift produced at that moment is timed until the journal holds it.
That covers the lease running out (5 s), the standby's poll (1 s), its start-up
(intake and publisher processes) and its joining the consumer group in place of
the dead member. Repeated, with a fresh standby each time.
"""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path

from kafka import KafkaProducer
from sqlalchemy import Engine, func, select

from bench import workload
from services.contracts.codec import EventCodec
from services.contracts.events import Event, utc_now_ms
from services.contracts.topics import Topics
from services.ledger.adapters import tables as t
from services.ledger.adapters.store import LedgerStore
from services.platform.db import make_engine
from services.platform.free_ports import free_ports
from services.platform.kafka_admin import delete_topics, ensure_topics

Out = Callable[[str], None]


def _journal_size(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(t.journal)) or 0)


def _readyz(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
            return str(answer.read().decode())
    except urllib.error.HTTPError as not_ready:
        return str(not_ready.read().decode())
    except OSError:
        return ""


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"takeover bench: {what} not within {timeout:.0f}s")
        time.sleep(0.02)


def _produce(bootstrap: str, topics: Topics, events: list[Event]) -> None:
    codec = EventCodec()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for event in events:
        producer.send(
            f"{topics.prefix}{event.topic_base}", key=event.project_id.encode(), value=codec.encode(event)
        )
    producer.flush()
    producer.close()


def measure(bootstrap: str, workdir: Path, times: int, out: Out) -> dict[str, float]:
    topics = Topics(f"takeover-{uuid.uuid4().hex[:8]}.")
    ensure_topics(bootstrap, topics.specs())
    url = f"sqlite:///{workdir / 'takeover.db'}"
    LedgerStore(make_engine(url)).migrate()
    engine = make_engine(url, writer=False)
    env = {
        "CHARITY_DATABASE_URL": url,
        "CHARITY_KAFKA_BOOTSTRAP": bootstrap,
        "CHARITY_TOPIC_PREFIX": topics.prefix,
        "CHARITY_LEDGER_GROUP": f"{topics.prefix}ledger",
        "CHARITY_LEDGER_INSTANCE_ID": "ledger-main",
        "CHARITY_SIGNING_KEY": str(workdir / "takeover-key.pem"),
    }
    processes: list[subprocess.Popen[bytes]] = []
    ports: dict[int, int] = {}

    def start() -> subprocess.Popen[bytes]:
        log = (workdir / f"takeover-ledger-{len(processes)}.log").open("ab")
        port = free_ports(1)[0]
        process = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "ledger"],
            env={**env, "CHARITY_LEDGER_HTTP_PORT": str(port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(process)
        ports[process.pid] = port
        return process

    def standing_by(process: subprocess.Popen[bytes]) -> bool:
        return "standing by" in _readyz(ports[process.pid])

    def grown(size: int) -> bool:
        return _journal_size(engine) > size

    seconds: list[float] = []
    try:
        ids = workload.project_ids(1)
        # Distinct gifts (the workload derives each one's id from its index): the same one
        # produced again, at another time, would be a conflicting duplicate, not a gift.
        gifts = list(workload.confirmed_gifts(times, ids, utc_now_ms()))
        active = start()
        _produce(bootstrap, topics, workload.opened_projects(ids, utc_now_ms()))
        _wait(lambda: _journal_size(engine) == 3, 90, "the first ledger applying the setup")
        for gift in gifts:
            standby = start()
            _wait(partial(standing_by, standby), 60, "the standby standing by")
            size = _journal_size(engine)
            active.send_signal(signal.SIGKILL)
            active.wait()
            killed = time.monotonic()
            _produce(bootstrap, topics, [gift])
            _wait(partial(grown, size), 60, "the standby applying a gift")
            seconds.append(time.monotonic() - killed)
            active = standby
            out(f"  a standby took over and applied a gift {seconds[-1]:.1f}s after the kill")
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(30)
        engine.dispose()
        delete_topics(bootstrap, [spec.name for spec in topics.specs()])
    return {
        "standby_takeover_s_median": round(statistics.median(seconds), 1),
        "standby_takeover_s_max": round(max(seconds), 1),
    }
