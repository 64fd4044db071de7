"""PostgreSQL refusing connections for a minute under load: the ledger waits it out by itself."""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaProducer
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from services.api.app import create_app
from services.api.producer import KafkaEventPublisher
from services.contracts.codec import EventCodec
from services.contracts.topics import Topics
from services.ledger.adapters import tables as t
from services.ledger.adapters.store import LedgerStore
from services.ledger.read import LedgerQueries
from services.platform.db import make_engine
from services.platform.scratch_postgres import scratch_database
from services.platform.settings import Settings
from tests.fixtures import factories as f
from tests.fixtures.kafka import free_ports
from tests.fixtures.ledger import eventually, inputs_consumed, readyz
from tests.fixtures.tcp_proxy import CuttableProxy
from tests.ledger.test_ledger_integration import produce, spawn_ledger, stop_process

pytestmark = [pytest.mark.integration, pytest.mark.slow]
codec = EventCodec()
OUTAGE_S = 60
N_GIFTS = 9_000  # about 100 a second, for the 90 s the test runs


@pytest.fixture
def proxied_db(postgres_url: str) -> Iterator[tuple[str, CuttableProxy]]:
    with scratch_database(postgres_url, "outage") as url:
        parsed = make_url(url)
        proxy = CuttableProxy(parsed.port or 5432, parsed.host or "127.0.0.1")
        try:
            yield url, proxy
        finally:
            proxy.close()


def lag(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
        text = answer.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("ledger_consumer_lag{")
    )


def test_a_database_outage_is_waited_out_without_a_restart(
    kafka_bootstrap: str, topics: Topics, proxied_db: tuple[str, CuttableProxy], tmp_path: Path
) -> None:
    direct_url, proxy = proxied_db
    through_proxy = (
        make_url(direct_url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    )
    LedgerStore(make_engine(direct_url)).migrate()
    direct = make_engine(direct_url)
    http_port = free_ports(1)[0]
    env = {
        "CHARITY_DATABASE_URL": through_proxy,
        "CHARITY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CHARITY_TOPIC_PREFIX": topics.prefix,
        "CHARITY_LEDGER_GROUP": f"outage-{topics.prefix}",
        "CHARITY_LEDGER_HTTP_PORT": str(http_port),
        "CHARITY_SIGNING_KEY": str(tmp_path / "key.pem"),
        "CHARITY_CREATE_SIGNING_KEY": "true",
    }
    gifts = [f.confirmed("p1", 100 + i, 0) for i in range(N_GIFTS)]

    def journal_size() -> int:
        with direct.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(t.journal)) or 0)

    def feed() -> None:
        producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
        for i, gift in enumerate(gifts):
            producer.send(topics.donations, key=b"p1", value=codec.encode(gift))
            if i % 50 == 0:
                time.sleep(0.5)
        producer.flush()
        producer.close()

    api_engine = make_engine(through_proxy, writer=False, connect_args={"connect_timeout": 2})
    api = create_app(
        Settings(
            database_url=through_proxy,
            staff_token="s3cret",
            kafka_bootstrap=kafka_bootstrap,
            internal_donations_enabled=True,
        ),
        LedgerQueries(api_engine),
        KafkaEventPublisher(kafka_bootstrap, topics, timeout_s=2.0),
        {},
    )
    process = spawn_ledger(env, tmp_path / "ledger.log")
    try:
        produce(kafka_bootstrap, topics, f.opened_project("p1"))
        eventually(lambda: journal_size() == 3, timeout=90, what="project opened")
        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        eventually(lambda: journal_size() > 500, timeout=60, what="the ledger at work")
        eventually(lambda: readyz(http_port) == 200, timeout=30, what="ready before the outage")
        proxy.cut()
        cut_at = time.monotonic()
        eventually(lambda: readyz(http_port) == 503, timeout=30, what="not ready during the outage")
        lag_early = lag(http_port)
        with TestClient(api, raise_server_exceptions=False) as client:
            answers = {
                client.get("/api/projects").status_code,
                client.get("/api/projects/p1/totals").status_code,
            }
        assert answers == {503}
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - cut_at)))
        assert process.poll() is None, "the ledger exited during the outage"
        assert readyz(http_port) == 503
        assert lag(http_port) > lag_early  # gifts kept coming while the ledger could not apply them
        proxy.restore()
        eventually(lambda: readyz(http_port) == 200, timeout=90, what="ready again after the outage")
        feeder.join()
        eventually(lambda: journal_size() == 3 + N_GIFTS, timeout=180, what="every gift applied")
        eventually(lambda: inputs_consumed(direct, kafka_bootstrap, topics), what="inputs consumed")
        assert journal_size() == 3 + N_GIFTS
        with direct.connect() as conn:
            assert conn.scalar(select(func.count(func.distinct(t.journal.c.entry_id)))) == 3 + N_GIFTS
    finally:
        stop_process(process)
        direct.dispose()
        api_engine.dispose()
    log = (tmp_path / "ledger.log").read_text(errors="replace")
    assert "retrying from the stored offsets" in log
    assert "the ledger recovered after" in log
