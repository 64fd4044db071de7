"""Benchmarks of the ledger core on a large journal: rebuild, verify, receipts.

Builds a journal of N entries with the real domain rules and the real store
(SQLite or PostgreSQL), signs one tree head, then times `rebuild` (replay +
compare), `verify` (chain, leaves, balances, heads, projections) and receipt
generation (inclusion proof against the signed head, with its DB reads).
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.db import make_engine
from services.ledger.domain.book import decide
from services.ledger.domain.projector import apply_entry
from services.ledger.domain.view import LedgerView
from services.ledger.rebuild import compare_with_live, replay
from services.ledger.store import Batch, LedgerStore
from services.ledger.transparency import Transparency, TreeHeadSigner
from services.ledger.verify import verify

BATCH = 5_000
PROJECTS = 100


class _NoOutput:
    def send(self, topic: str, key: bytes | None, value: bytes, headers: Any = None) -> None:
        pass

    def flush(self, timeout: float = 30.0) -> None:
        pass


def _events(n: int, rng: random.Random) -> Any:
    now = ev.utc_now_ms()
    common: dict[str, Any] = {"occurred_at": now, "actor": "bench"}
    for p in range(PROJECTS):
        pid = f"bench-{p:03d}"
        yield ev.ProjectRegistered(
            event_id=ev.derived_id("bench-reg", pid),
            project_id=pid,
            name=f"项目{p}",
            organisation="园区慈善总会",
            certificate_no="CSZ-1",
            purpose="助餐",
            goal_fen=10**9,
            currency="CNY",
            starts_on="2026-01-01",
            ends_on="2026-12-31",
            beneficiaries="老人",
            use_of_funds="餐费",
            cost_cap_bp=1000,
            leftover_handling="转入同类项目",
            **common,
        )
        yield ev.ProjectApproved(
            event_id=ev.derived_id("bench-ok", pid), project_id=pid, approval_ref="A", **common
        )
        yield ev.FundraisingOpened(event_id=ev.derived_id("bench-open", pid), project_id=pid, **common)
    for i in range(n - 3 * PROJECTS):
        gross = rng.randint(100, 100_000)
        yield ev.DonationConfirmed(
            event_id=ev.derived_id("bench-gift", str(i)),
            project_id=f"bench-{rng.randrange(PROJECTS):03d}",
            donation_id=f"g{i}",
            provider="sandbox",
            provider_charge_id=f"c{i}",
            gross_fen=gross,
            fee_fen=gross * 6 // 1000,
            currency="CNY",
            channel="qr",
            anonymity="anonymous",
            **common,
        )


def build_journal(url: str, n: int, seed: int = 1) -> LedgerStore:
    store = LedgerStore(make_engine(url))
    store.migrate()
    view = LedgerView()
    batch = Batch(group_id="bench", recorded_at=ev.utc_now_ms())
    for event in _events(n, random.Random(seed)):
        entry = decide(event, view)
        apply_entry(entry, view)
        batch.entries.append((entry, "bench/0/0"))
        if len(batch.entries) == BATCH:
            store.commit_batch(batch, view)
            view.clear_dirty()
            view.donations.clear()  # as the live ledger does: referenced records are reloaded on demand
            batch = Batch(group_id="bench", recorded_at=ev.utc_now_ms())
    if batch.entries:
        store.commit_batch(batch, view)
    return store


def run(url: str, n: int, receipts: int = 1_000) -> dict[str, float]:
    started = time.perf_counter()
    store = build_journal(url, n)
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
    transparency.receipt(ev.derived_id("bench-gift", "0"))  # the first call loads the tree
    tree_load_s = time.perf_counter() - started
    rng = random.Random(2)
    timings = []
    for _ in range(receipts):
        entry_id = ev.derived_id("bench-gift", str(rng.randrange(n - 3 * PROJECTS)))
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
    store.engine.dispose()
    return {
        "journal_entries": float(n),
        "build_journal_s": round(build_s, 1),
        "rebuild_s": round(rebuild_s, 1),
        "verify_s": round(verify_s, 1),
        "receipt_tree_load_s": round(tree_load_s, 2),
        "receipt_p50_ms": round(statistics.median(timings), 3),
        "receipt_p99_ms": round(timings[int(len(timings) * 0.99) - 1], 3),
        "inclusion_proof_mean_ms": round(statistics.fmean(proof_ms), 4),
    }
