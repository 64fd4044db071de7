"""Benchmarks of the ledger core on a large journal: rebuild, verify, receipts.

Builds a journal of N entries with the real domain rules and the real store
(SQLite or PostgreSQL), signs one tree head, then times `rebuild` (replay +
compare), `verify` (chain, leaves, balances, heads, projections), receipt
generation (inclusion proof against the signed head, with its DB reads) and,
given a broker, the relay catching up with the whole journal from a watermark
of 0 (every entry's journal record and outcome, and totals).
"""

from __future__ import annotations

import itertools
import random
import statistics
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bench import workload
from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.adapters.publisher_process import PublisherProcess
from services.ledger.adapters.store import LedgerStore
from services.ledger.adapters.tree_heads import TreeHeadSigner
from services.ledger.domain.book import decide
from services.ledger.domain.projector import apply_entry
from services.ledger.domain.view import LedgerView
from services.ledger.ops.rebuild import compare_with_live, replay
from services.ledger.ops.verify import verify
from services.ledger.read.transparency import Transparency
from services.ledger.service.outputs import OutputPublisher, Publisher, PublishPlan, SizeRoutedPublisher
from services.ledger.service.ports import Batch
from services.ledger.service.processor import BatchProcessor
from services.platform.db import make_engine
from services.platform.kafka_admin import delete_topics, ensure_topics
from services.platform.rdkafka_output import RdKafkaOutput

BATCH = 5_000
PROJECTS = 100


class _NoOutput:
    def send(self, topic: str, key: bytes | None, value: bytes, headers: Any = None) -> None:
        pass

    def flush(self, timeout: float = 30.0) -> None:
        pass


def build_journal(url: str, n: int, sample_every: int = 997) -> tuple[LedgerStore, list[str]]:
    """A journal of n entries (the ingest benchmark's workload); returns a sample of gift event ids."""
    store = LedgerStore(make_engine(url))
    store.migrate()
    now = ev.utc_now_ms()
    ids = workload.project_ids(PROJECTS)
    setup = workload.opened_projects(ids, now)
    gifts = workload.confirmed_gifts(n - len(setup), ids, now)
    sample: list[str] = []

    def sampled() -> Iterator[ev.Event]:
        for i, event in enumerate(itertools.chain(setup, gifts)):
            if i >= len(setup) and i % sample_every == 0:
                sample.append(event.event_id)
            yield event

    commit_events(store, LedgerView(), sampled())
    return store, sample


def commit_events(
    store: LedgerStore, view: LedgerView, events: Iterable[ev.Event], *, forget_donations: bool = True
) -> None:
    """Decide, apply and commit `events` in batches of BATCH with the real rules and store.

    forget_donations: drop the gifts from the view after each batch, as the live ledger does
    (it reloads the records an event refers to); plain `decide` would then refuse a refund of
    a gift of an earlier batch, so a workload with refunds keeps them.
    """
    batch = Batch(group_id="bench", recorded_at=ev.utc_now_ms())
    for event in events:
        entry = decide(event, view)
        apply_entry(entry, view)
        batch.entries.append((entry, "bench/0/0"))
        if len(batch.entries) == BATCH:
            store.commit_batch(batch, view)
            view.clear_dirty()
            if forget_donations:
                view.donations.clear()
            batch = Batch(group_id="bench", recorded_at=ev.utc_now_ms())
    if batch.entries:
        store.commit_batch(batch, view)


class _Counting:
    """A publisher that counts the records of the plans it passes on."""

    def __init__(self, inner: Publisher) -> None:
        self.inner = inner
        self.records = 0

    @property
    def acknowledged(self) -> int:
        return self.inner.acknowledged

    @acknowledged.setter
    def acknowledged(self, seq: int) -> None:
        self.inner.acknowledged = seq

    def publish(self, plan: PublishPlan) -> None:
        self.records += len(plan)
        self.inner.publish(plan)

    def drain(self) -> None:
        self.inner.drain()


def relay_catch_up(store: LedgerStore, bootstrap: str) -> tuple[float, int]:
    """The relay starting the whole journal behind (its watermark at 0), publishing to a
    real broker as the ledger does: large plans from the publisher process. Returns the
    seconds it took and the records it published."""
    topics = Topics(f"relay-{uuid.uuid4().hex[:8]}.")
    ensure_topics(bootstrap, topics.specs())
    output = RdKafkaOutput(bootstrap)
    process = PublisherProcess(bootstrap, topics)
    counting = _Counting(SizeRoutedPublisher(OutputPublisher(output, topics), process, 1_000))
    try:
        processor = BatchProcessor(store, output, topics, "relay-bench", publisher=counting)
        started = time.perf_counter()
        processor.catch_up_outputs()
        return time.perf_counter() - started, counting.records
    finally:
        process.close()
        output.close()
        delete_topics(bootstrap, [spec.name for spec in topics.specs()])


def run(url: str, n: int, receipts: int = 1_000, bootstrap: str | None = None) -> dict[str, float]:
    started = time.perf_counter()
    store, gift_ids = build_journal(url, n)
    build_s = time.perf_counter() - started
    key = Ed25519PrivateKey.generate()
    TreeHeadSigner(store.engine, key, _NoOutput(), Topics("")).publish_if_grown()

    started = time.perf_counter()
    rebuilt = replay(store.engine)
    equal = compare_with_live(store.engine, rebuilt).equal
    rebuild_s = time.perf_counter() - started
    if not equal:
        raise RuntimeError("rebuild differs from the live projections")
    del rebuilt

    started = time.perf_counter()
    report = verify(store.engine, key.public_key())
    verify_s = time.perf_counter() - started
    if not report.ok:
        raise RuntimeError(f"verify failed: {report.problems[0]}")
    del report

    transparency = Transparency(store.engine)
    started = time.perf_counter()
    transparency.receipt(gift_ids[0])  # the first call loads the tree
    tree_load_s = time.perf_counter() - started
    rng = random.Random(2)
    timings = []
    for _ in range(receipts):
        entry_id = rng.choice(gift_ids)
        t0 = time.perf_counter()
        transparency.receipt(entry_id)
        timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    proof_ms = []
    for _ in range(receipts):
        index = rng.randrange(n)
        t0 = time.perf_counter()
        transparency.tree.inclusion_proof(index)
        proof_ms.append((time.perf_counter() - t0) * 1000)
    relay: dict[str, float] = {}
    if bootstrap is not None:
        seconds, records = relay_catch_up(store, bootstrap)
        relay = {
            "relay_catch_up_s": round(seconds, 1),
            "relay_catch_up_entries_per_s": round(n / seconds),
            "relay_catch_up_outputs_per_s": round(records / seconds),
        }
    store.engine.dispose()
    return relay | {
        "journal_entries": float(n),
        "build_journal_s": round(build_s, 1),
        "rebuild_s": round(rebuild_s, 1),
        "verify_s": round(verify_s, 1),
        "receipt_tree_load_s": round(tree_load_s, 2),
        "receipt_p50_ms": round(statistics.median(timings), 3),
        "receipt_p99_ms": round(timings[int(len(timings) * 0.99) - 1], 3),
        "inclusion_proof_mean_ms": round(statistics.fmean(proof_ms), 4),
    }
