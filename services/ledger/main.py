"""The ledger process: the composition root that wires its adapters together."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from services.contracts.topics import Topics
from services.ledger import metrics
from services.ledger.adapters.donor_keys import StoredDonorKeys
from services.ledger.adapters.intake_process import IntakeProcess
from services.ledger.adapters.lag_monitor import LagMonitor
from services.ledger.adapters.lease import RENEW_EVERY_S, TTL_MS, WriterLease, holder_name
from services.ledger.adapters.publisher_process import PublisherProcess
from services.ledger.adapters.signing import NoSigningKey, load_or_create_signing_key
from services.ledger.adapters.sqlite_wal import WalCheckpointer
from services.ledger.adapters.store import LedgerStore
from services.ledger.adapters.tree_heads import TreeHeadSigner
from services.ledger.domain.book import Policy
from services.ledger.service.batch_loop import BatchLoop, StoredPositions
from services.ledger.service.outputs import OutputPublisher, SizeRoutedPublisher
from services.ledger.service.processor import BatchProcessor
from services.platform.broken import LeaseLost, OutputBroken
from services.platform.db import make_engine, make_probe_engine
from services.platform.health import Check, broker_check, database_check, health_router
from services.platform.http_thread import serve_in_thread
from services.platform.periodic import run_every
from services.platform.rdkafka_output import RdKafkaOutput
from services.platform.settings import Settings

log = logging.getLogger("charity.ledger")
WAL_CHECKPOINT_EVERY_S = 0.5
# Plans of this many records or more (about 450 gifts: an outcome and a feed
# item each, plus totals) go to the publisher process; smaller ones, a
# screen's steady pace, are published in the ledger's own process.
PUBLISHER_PROCESS_FROM = 1_000


@dataclass
class LedgerApp:
    store: LedgerStore
    processor: BatchProcessor
    consumer: BatchLoop
    intake: IntakeProcess  # reads, decodes and validates the input
    output: RdKafkaOutput  # dead letters, and the outputs of small batches
    publisher: PublisherProcess  # the outputs of large batches
    signer: TreeHeadSigner
    signer_output: RdKafkaOutput
    checkpointer: WalCheckpointer | None  # SQLite only
    lease: WriterLease


def wait_for(what: str, check: Check, timeout: float = 60.0) -> None:
    """Readiness wait with retries: dependencies may still be starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not reachable after {timeout:.0f}s: {exc}") from exc
            time.sleep(0.5)


def bootstrap(settings: Settings, stop: threading.Event | None = None) -> LedgerApp | None:
    """Wire the ledger, once it holds the writer lease; None if `stop` came first (a
    standby that was stopped)."""
    # The lease's check comes first in every batch, so a ledger paused in one holds the
    # lease row's lock: its session ends once it has sat that long, and a standby gets in.
    engine = make_engine(
        settings.database_url, background_checkpoints=True, idle_transaction_timeout_ms=TTL_MS
    )
    wait_for("database", database_check(engine))
    LedgerStore(engine).migrate()
    lease = WriterLease(engine, holder_name(settings.ledger_instance_id))
    if not lease.wait_for(stop or threading.Event()):
        return None
    store = LedgerStore(engine, guard=lease.check)
    # Before any helper process starts: a ledger without its key stops here.
    key_path = Path(settings.signing_key_path)
    may_create = settings.create_signing_key or engine.dialect.name == "sqlite"
    key = load_or_create_signing_key(key_path, create=may_create)
    wait_for("Kafka broker", broker_check(settings.kafka_bootstrap))
    topics = Topics(settings.topic_prefix)
    output = RdKafkaOutput(settings.kafka_bootstrap)
    publisher = PublisherProcess(settings.kafka_bootstrap, topics)
    routed = SizeRoutedPublisher(OutputPublisher(output, topics), publisher, PUBLISHER_PROCESS_FROM)
    processor = BatchProcessor(
        store,
        output,
        topics,
        settings.ledger_group,
        publisher=routed,
        donor_keys=StoredDonorKeys(store.engine),
        policy=Policy(dual_approval_threshold_fen=settings.disbursement_dual_approval_fen),
    )
    intake = IntakeProcess(
        settings.kafka_bootstrap,
        settings.ledger_group,
        topics,
        StoredPositions(store, processor),
        max_records=settings.batch_max_records,
        fetch_max_wait_ms=settings.batch_max_wait_ms,
        metadata_max_age_ms=settings.metadata_max_age_ms,
        group_instance_id=settings.ledger_instance_id,
        session_timeout_ms=10_000,
    )
    consumer = BatchLoop(intake, processor)
    # The signer has its own producer: it runs in another thread than the batches.
    signer_output = RdKafkaOutput(settings.kafka_bootstrap, client_id="charity-ledger-signer")
    signer = TreeHeadSigner(engine, key, signer_output, topics, key_path=key_path, guard=lease.check)
    checkpointer = WalCheckpointer(engine) if engine.dialect.name == "sqlite" else None
    return LedgerApp(
        store, processor, consumer, intake, output, publisher, signer, signer_output, checkpointer, lease
    )


def batches_check(app: Callable[[], LedgerApp | None]) -> Check:
    """Not ready while standing by for the writer lease, nor while the batch loop is
    waiting out a failure (it retries by itself)."""

    def check() -> None:
        running = app()
        if running is None:
            raise RuntimeError("standing by: another ledger holds the writer lease")
        if not running.consumer.healthy:
            raise RuntimeError("the last attempt to apply a batch failed; retrying with back-off")

    return check


def sign_tree_heads(
    signer: TreeHeadSigner, stop: threading.Event, every_s: float, broken: list[Exception]
) -> None:
    """Publish a signed tree head whenever the journal has grown, every few seconds.

    A producer that failed for good cannot recover: rather than a ledger that
    quietly stops signing, the whole ledger stops (`broken` says why) and is
    restarted with a new producer, as when the batches' producer fails.
    """
    run_every(stop, every_s, signer.publish_if_grown, OutputBroken, broken, "publishing a tree head")


def run(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s ledger %(levelname)s %(message)s")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    started: list[LedgerApp] = []
    http = FastAPI(title="charity ledger (operations)")
    http.include_router(
        health_router(
            {
                # Not the writer's engine: its BEGIN IMMEDIATE would wait for the lock.
                "database": database_check(make_probe_engine(settings.database_url)),
                "kafka": broker_check(settings.kafka_bootstrap),
                "batches": batches_check(lambda: started[0] if started else None),
            }
        )
    )
    server = serve_in_thread(http, settings.ledger_http_host, settings.ledger_http_port)
    metrics.WRITER_LEASE_HELD.set(0)  # a standby until bootstrap has the lease
    try:
        try:
            app = bootstrap(settings, stop)
        except NoSigningKey as exc:
            log.critical("%s", exc)
            raise SystemExit(2) from None
        if app is not None:
            started.append(app)
            metrics.WRITER_LEASE_HELD.set(1)
            _serve(app, settings, stop)
    finally:
        server.should_exit = True
        log.info("ledger stopped")


def _serve(app: LedgerApp, settings: Settings, stop: threading.Event) -> None:
    """Apply batches until stopped, with the threads that go with it; then let go of all."""
    lease_lost: list[Exception] = []
    threading.Thread(
        target=run_every,
        args=(stop, RENEW_EVERY_S, app.lease.renew, LeaseLost, lease_lost, "renewing the writer lease"),
        name="writer-lease",
        daemon=True,
    ).start()
    signer_broken: list[Exception] = []
    threading.Thread(
        target=sign_tree_heads,
        args=(app.signer, stop, settings.tree_head_interval_s, signer_broken),
        daemon=True,
    ).start()
    # Read when Prometheus scrapes: the broker acknowledges outputs between batches too.
    metrics.OUTPUTS_ACKNOWLEDGED_SEQ.set_function(lambda: app.processor.publisher.acknowledged)
    lag = LagMonitor(
        settings.kafka_bootstrap, app.intake.positions, lambda: time.monotonic() - app.consumer.last_commit
    )
    threading.Thread(target=lag.run, args=(stop,), name="lag-monitor", daemon=True).start()
    if app.checkpointer is not None:
        threading.Thread(
            target=app.checkpointer.run,
            args=(stop, WAL_CHECKPOINT_EVERY_S),
            name="wal-checkpoints",
            daemon=True,
        ).start()
    log.info("ledger consuming %s as group %s", Topics(settings.topic_prefix).inputs, settings.ledger_group)
    clean = False
    try:
        app.consumer.run(stop)
        for failure in (*lease_lost, *signer_broken):
            raise failure  # exits non-zero, to be restarted (as the standby, if the lease is lost)
        clean = True
    finally:
        app.consumer.close()
        app.publisher.close()
        app.output.close()
        app.signer_output.close()
        if clean:
            app.lease.release()  # a clean stop: the standby need not wait for the lease to run out
