"""Fault (a) of issue 15: kill -9 the leader of a donations partition under a steady load of
gifts through the API, on the local three-node cluster and PostgreSQL; restart it later.

Reports acknowledged, applied, lost (must be 0), applied twice (must be 0) and the recovery
time (from the kill to the first gift of the killed leader's partition the API acknowledged
again). Run by `make test-faults`, not by `make test`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from kafka import KafkaProducer
from kafka.partitioner.default import murmur2
from sqlalchemy import select

from services.api.main import build as build_api
from services.contracts.codec import EventCodec
from services.contracts.topics import INPUT_PARTITIONS, Topics
from services.ledger.adapters import tables as t
from services.ledger.ops.commands import verify_command
from services.platform.free_ports import free_ports
from services.platform.http_thread import serve_in_thread
from services.platform.kafka_admin import ensure_topics
from services.platform.kafka_cluster import LocalKafkaCluster
from services.platform.scratch_postgres import scratch_database
from services.platform.settings import Settings
from tests.fixtures import factories as f
from tests.fixtures.ledger import eventually, inputs_consumed, ledger_settings, start_ledger, stop_ledger

pytestmark = [pytest.mark.integration, pytest.mark.faults]
PROJECTS = ["meals", "books", "wells", "trees"]
RATE = 20  # gifts a second, steady


@dataclass
class GiftLoad:
    """Posts gifts to the API's confirmed-donation stand-in at a steady rate, each until
    the API acknowledges it (202) or a few tries failed, as a provider's retries would."""

    api: str
    authorization: str
    acknowledged: dict[str, tuple[str, float]] = field(default_factory=dict)  # id -> project, when
    refused: Counter[int] = field(default_factory=Counter)  # status (0: no answer) -> tries
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        http = httpx.Client(base_url=self.api, timeout=10, headers={"Authorization": self.authorization})
        with http, ThreadPoolExecutor(max_workers=16) as pool:
            n, started = 0, time.monotonic()
            while not self.stop.is_set():
                gift = (PROJECTS[n % len(PROJECTS)], f"fault-{uuid.uuid4().hex[:16]}")
                pool.submit(self._give, http, *gift)
                n += 1
                self.stop.wait(max(0.0, started + n / RATE - time.monotonic()))

    def _give(self, client: httpx.Client, project: str, donation_id: str) -> None:
        body = {"project_id": project, "donation_id": donation_id, "provider_charge_id": donation_id}
        body |= {"gross_fen": 500}
        for _ in range(6):
            try:
                status = client.post("/api/internal/donations/confirmed", json=body).status_code
            except httpx.HTTPError:
                status = 0
            if status == 202:
                self.acknowledged[donation_id] = (project, time.monotonic())
                return
            self.refused[status] += 1

    def acknowledged_after(self, moment: float, project: str) -> bool:
        return any(p == project and at > moment for p, at in list(self.acknowledged.values()))


def partition_of(project: str) -> int:
    """Where the API's producer puts a project's gifts (Java's murmur2 partitioner)."""
    return (murmur2(project.encode()) & 0x7FFFFFFF) % INPUT_PARTITIONS


@pytest.fixture
def postgres_db(postgres_url: str) -> Iterator[str]:
    with scratch_database(postgres_url, "faults") as url:
        yield url


@pytest.mark.timeout(600)
def test_kill_9_the_leader_of_a_donations_partition_under_load(
    kafka_cluster: LocalKafkaCluster, postgres_db: str, tmp_path: Path
) -> None:
    topics = Topics(prefix=f"f{uuid.uuid4().hex[:6]}.")
    bootstrap = kafka_cluster.bootstrap
    ensure_topics(bootstrap, topics.specs(), timeout=60.0, replication=kafka_cluster.replication)
    api_port = free_ports(1)[0]
    settings: Settings = ledger_settings(
        kafka_cluster.bootstrap,
        topics,
        postgres_db,
        signing_key_path=str(tmp_path / "keys" / "sth.pem"),
        api_port=api_port,
        topic_replication_factor=3,
        topic_min_insync_replicas=2,
    )
    ledger = start_ledger(settings)
    api = serve_in_thread(build_api(settings), "127.0.0.1", api_port)
    engine = ledger.app.store.engine
    load = GiftLoad(f"http://127.0.0.1:{api_port}", f"Bearer {settings.staff_token}")
    feeder = threading.Thread(target=load.run, daemon=True)
    try:
        opening = [e for p in PROJECTS for e in f.opened_project(p)]
        producer = KafkaProducer(bootstrap_servers=kafka_cluster.bootstrap, acks="all")
        for e in opening:
            topic = f"{topics.prefix}{e.topic_base}"
            producer.send(topic, key=e.project_id.encode(), value=EventCodec().encode(e))
        producer.flush()
        producer.close()
        eventually(lambda: api.started and inputs_consumed(engine, bootstrap, topics), timeout=90)

        feeder.start()
        eventually(lambda: len(load.acknowledged) >= 5 * RATE, timeout=90, what="gifts flowing")

        project = PROJECTS[0]
        partition = partition_of(project)
        leader = next(
            p.leader for p in kafka_cluster.partitions([topics.donations]) if p.partition == partition
        )
        killed_at = time.monotonic()
        kafka_cluster.kill(leader)
        eventually(
            lambda: load.acknowledged_after(killed_at, project), timeout=120, what="gifts acknowledged again"
        )
        again = min(at for p, at in load.acknowledged.values() if p == project and at > killed_at)
        recovery_s = again - killed_at
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
        load.stop.set()
        feeder.join(timeout=120)

        eventually(
            lambda: inputs_consumed(engine, kafka_cluster.bootstrap, topics), timeout=120, what="all applied"
        )
        with engine.connect() as conn:
            gifts = select(t.journal.c.canonical).where(t.journal.c.kind == "DonationConfirmed")
            bodies = conn.scalars(gifts)
            applied = Counter(orjson.loads(body)["body"]["donation_id"] for body in bodies)
        ledger.app.signer.publish_if_grown()
    finally:
        load.stop.set()
        api.should_exit = True
        stop_ledger(ledger)

    acknowledged = set(load.acknowledged)
    report = {
        "fault": "kill -9 the leader of a donations partition, restart it 15 s later",
        "acknowledged": len(acknowledged),
        "applied": sum(1 for d in applied if d.startswith("fault-")),
        "lost": len(acknowledged - set(applied)),
        "applied_twice": sum(1 for n in applied.values() if n > 1),
        "recovery_s": round(recovery_s, 1),
        "refused_tries": {str(k): v for k, v in load.refused.items()},
    }
    (tmp_path / "partition-leader-kill.json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report))  # make test-faults shows it (-rP)
    assert report["lost"] == 0 and report["applied_twice"] == 0, report
    assert report["acknowledged"] >= 20 * RATE
    assert verify_command(database_url=postgres_db, quiet=True) == 0
