"""How the ledger's processes tune Python's garbage collector for batches."""

from __future__ import annotations

import gc

GC_THRESHOLDS = (100_000, 20, 100)


def tune_collector() -> None:
    """Keep what a process built before its first batch out of the collector, and let
    the collector run far less often (GC_THRESHOLDS, why below).

    Modules, the engine, schemas and clients live as long as the process, yet
    every full collection walked them again; the batches allocate enough to run
    one every few thousand events. gc.freeze() moves them to a permanent
    generation (docs/benchmarks.md has the effect). Only where the batch loop or
    the intake owns the process, not in a test process that runs it in a thread.
    """
    gc.collect()
    gc.freeze()
    # A batch keeps thousands of records, events and rows alive until it is
    # committed, so with Python's default thresholds (700, 10, 10) the collector
    # walked them again and again: per 1,000 events about 60 young, 6 middle and
    # 0.5 full collections, 0.82 s in all of a 98,000-event drain (measured with
    # gc.callbacks). Nearly all of them die by reference counting, not by
    # collection; collecting every 100,000 net allocations still bounds what
    # cycles could pile up, and no collection was left in such a drain.
    gc.set_threshold(*GC_THRESHOLDS)
