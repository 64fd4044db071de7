"""The ledger process: the composition root that wires its adapters together."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from services.contracts.topics import Topics
from services.ledger.adapters.db import make_engine
from services.ledger.adapters.intake_process import IntakeProcess
from services.ledger.adapters.publisher_process import PublisherProcess
from services.ledger.adapters.signing import load_or_create_signing_key
from services.ledger.adapters.sqlite_wal import WalCheckpointer
from services.ledger.adapters.store import LedgerStore
from services.ledger.adapters.tree_heads import TreeHeadSigner
from services.ledger.service.batch_loop import BatchLoop, StoredPositions
from services.ledger.service.outputs import OutputPublisher, SizeRoutedPublisher
from services.ledger.service.processor import BatchProcessor
from services.platform.broken import OutputBroken
from services.platform.health import Check, broker_check, database_check, health_router
from services.platform.http_thread import serve_in_thread
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


def bootstrap(settings: Settings) -> LedgerApp:
    engine = make_engine(settings.database_url, background_checkpoints=True)
    store = LedgerStore(engine)
    wait_for("database", database_check(engine))
    store.migrate()
    wait_for("Kafka broker", broker_check(settings.kafka_bootstrap))
    topics = Topics(settings.topic_prefix)
    output = RdKafkaOutput(settings.kafka_bootstrap)
    publisher = PublisherProcess(settings.kafka_bootstrap, topics)
    routed = SizeRoutedPublisher(OutputPublisher(output, topics), publisher, PUBLISHER_PROCESS_FROM)
    processor = BatchProcessor(store, output, topics, settings.ledger_group, publisher=routed)
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
    key = load_or_create_signing_key(Path(settings.signing_key_path))
    # The signer has its own producer: it runs in another thread than the batches.
    signer_output = RdKafkaOutput(settings.kafka_bootstrap, client_id="charity-ledger-signer")
    signer = TreeHeadSigner(engine, key, signer_output, topics)
    checkpointer = WalCheckpointer(engine) if engine.dialect.name == "sqlite" else None
    return LedgerApp(
        store, processor, consumer, intake, output, publisher, signer, signer_output, checkpointer
    )


def batches_check(loop: BatchLoop) -> Check:
    """Not ready while the batch loop is waiting out a failure (it retries by itself)."""

    def check() -> None:
        if not loop.healthy:
            raise RuntimeError("the last attempt to apply a batch failed; retrying with back-off")

    return check


def sign_tree_heads(
    signer: TreeHeadSigner, stop: threading.Event, every_s: float, broken: list[OutputBroken]
) -> None:
    """Publish a signed tree head whenever the journal has grown, every few seconds.

    A producer that failed for good cannot recover: rather than a ledger that
    quietly stops signing, the whole ledger stops (`broken` says why) and is
    restarted with a new producer, as when the batches' producer fails.
    """
    while not stop.wait(every_s):
        try:
            signer.publish_if_grown()
        except OutputBroken as exc:
            log.critical("the tree-head producer failed for good (%s); stopping the ledger", exc)
            broken.append(exc)
            stop.set()
            return
        except Exception:
            log.exception("publishing a tree head failed; retrying at the next interval")


def run(settings: Settings | None = None) -> None:
    settings = settings or Settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s ledger %(levelname)s %(message)s")
    app = bootstrap(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    http = FastAPI(title="charity ledger (operations)")
    http.include_router(
        health_router(
            {
                "database": database_check(app.store.engine),
                "kafka": broker_check(settings.kafka_bootstrap),
                "batches": batches_check(app.consumer),
            }
        )
    )
    server = serve_in_thread(http, "127.0.0.1", settings.ledger_http_port)
    signer_broken: list[OutputBroken] = []
    threading.Thread(
        target=sign_tree_heads,
        args=(app.signer, stop, settings.tree_head_interval_s, signer_broken),
        daemon=True,
    ).start()
    if app.checkpointer is not None:
        threading.Thread(
            target=app.checkpointer.run,
            args=(stop, WAL_CHECKPOINT_EVERY_S),
            name="wal-checkpoints",
            daemon=True,
        ).start()
    log.info("ledger consuming %s as group %s", Topics(settings.topic_prefix).inputs, settings.ledger_group)
    try:
        app.consumer.run(stop)
        if signer_broken:
            raise signer_broken[0]  # exits non-zero, to be restarted
    finally:
        app.consumer.close()
        app.publisher.close()
        app.output.close()
        app.signer_output.close()
        server.should_exit = True
        log.info("ledger stopped")
