"""`python -m bench.restore`: peak memory and speed of `charity-ledger restore --from-topic`.

1. takes the SQLite journal of N entries the journal-export benchmark builds (or reuses)
   in var/bench/export-journal-<N>.db (`bench.export.ensure_journal`);
2. in a fresh child process, so that its peak is the restore's own: streams that journal's
   rows as the journal topic's records (JournalEntryCommitted, as the relay publishes them),
   signs one tree head over all of it with a new key (its root from `MerkleFrontier`), and
   restores into a new, migrated SQLite database with `services.ledger.ops.restore`, the
   journal alone (`projections=False`) or with the projections rebuilt after it;
3. reports the child's peak RSS (VmHWM) before and after, and entries a second.

No broker: the records come from the database instead of the topic, so what is measured is
the restore's own memory, not kafka-python's fetch buffers. `--code-at COMMIT` restores
with `services/ledger/ops/restore.py` as it was at that commit (the "before" figures).

Prints the report to stderr as it goes; the last line (stdout) is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from bench.export import ensure_journal
from bench.measure import peak_rss_mb, summary_line
from services.contracts.events import (
    Event,
    JournalEntryCommitted,
    derived_id,
    utc_now_ms,
)
from services.ledger.adapters import tables as t
from services.ledger.adapters.signing import checkpoint_events
from services.ledger.adapters.store import LedgerStore
from services.ledger.adapters.topic_reader import TopicRecord
from services.ledger.domain.merkle import MerkleFrontier, TreeHead
from services.platform.db import make_engine

REPO = Path(__file__).resolve().parents[1]
TOPIC = "bench.charity.ledger.journal"


def _own_peak_rss_mib() -> float:
    return peak_rss_mb(Path("/proc/self/status").read_text())


def journal_records(url: str) -> Iterator[TopicRecord]:
    """The journal's rows in seq order as the journal topic's records, streamed."""
    engine = make_engine(url, writer=False)
    j = t.journal
    columns = (
        j.c.seq,
        j.c.entry_id,
        j.c.project_id,
        j.c.canonical,
        j.c.prev_hash,
        j.c.entry_hash,
        j.c.source,
    )
    now = utc_now_ms()
    with engine.connect() as conn:
        rows = conn.execution_options(yield_per=5_000).execute(select(*columns, j.c.source).order_by(j.c.seq))
        for row in rows:
            event = JournalEntryCommitted(
                event_id=derived_id("journal", str(row.seq)),
                occurred_at=now,
                actor="ledger",
                project_id=row.project_id,
                seq=row.seq,
                entry_id=row.entry_id,
                canonical=row.canonical,
                prev_hash=row.prev_hash,
                entry_hash=row.entry_hash,
                source=row.source,
            )
            yield TopicRecord(TOPIC, 0, row.seq - 1, event)
    engine.dispose()


def signed_head_over(url: str) -> list[Event]:
    """The checkpoints topic of a head over the whole journal, signed with a new key."""
    frontier = MerkleFrontier()
    engine = make_engine(url, writer=False)
    with engine.connect() as conn:
        leaves = conn.execution_options(yield_per=50_000).execute(
            select(t.merkle_leaves.c.leaf_hash).order_by(t.merkle_leaves.c.seq)
        )
        for (leaf,) in leaves:
            frontier.append(bytes.fromhex(leaf))
    engine.dispose()
    now = utc_now_ms()
    head = TreeHead(frontier.size, frontier.root(), int(now.timestamp() * 1000))
    return list(checkpoint_events(Ed25519PrivateKey.generate(), head, now))


def restore_module(commit: str | None) -> ModuleType:
    """services.ledger.ops.restore, or its text at `commit` loaded as a module of its own."""
    if commit is None:
        from services.ledger.ops import restore

        return restore
    text = subprocess.run(
        ["git", "show", f"{commit}:services/ledger/ops/restore.py"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "restore_at_commit.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location("restore_at_commit", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def restore_once(source: Path, commit: str | None, projections: bool) -> dict[str, Any]:
    """One restore in this process (the child's side)."""
    url = f"sqlite:///{source}"
    module = restore_module(commit)
    checkpoints = signed_head_over(url)
    with tempfile.TemporaryDirectory() as tmp:
        target = make_engine(f"sqlite:///{Path(tmp) / 'restored.db'}")
        LedgerStore(target).migrate()
        before = _own_peak_rss_mib()
        started, cpu_started = time.perf_counter(), time.process_time()
        records = journal_records(url)
        if commit is None:
            report = module.restore(target, records, checkpoints, "bench", projections=projections)
        else:  # the code before took the events alone, and always rebuilt the projections
            report = module.restore(target, (r.event for r in records), checkpoints, "bench")
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        target.dispose()
    return {
        "entries": report.entries,
        "seconds": seconds,
        "entries_per_s": report.entries / seconds,
        "entries_per_cpu_s": report.entries / cpu_seconds,
        "rss_before_mib": before,
        "peak_rss_mib": _own_peak_rss_mib(),
    }


def in_child(source: Path, commit: str | None, projections: bool) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.restore", "--child", str(source)]
    args += ["--code-at", commit] if commit else []
    args += [] if projections else ["--journal-only"]
    done = subprocess.run(args, stdout=subprocess.PIPE, text=True, check=True)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


Figures = dict[str, float | int | str | bool | None]


def run(entries: int, commit: str | None, out: Any = sys.stderr) -> Figures:
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    code = f"restore.py at {commit}" if commit else "the current restore.py"
    print(f"restore: a journal of {entries:,} entries with {code}; load average {load}", file=out, flush=True)
    source, _ = ensure_journal(entries)
    figures: Figures = {"entries": entries, "code_at": commit or "current"}
    runs = (("with_projections", True),) if commit else (("journal_only", False), ("with_projections", True))
    for name, projections in runs:
        report = in_child(source, commit, projections)
        print(
            f"  {name.replace('_', ' ')}: {report['entries']:,} entries in {report['seconds']:.1f}s "
            f"({report['entries_per_s']:,.0f}/s, {report['entries_per_cpu_s']:,.0f} a CPU second); "
            f"peak RSS {report['peak_rss_mib']:.0f} MiB ({report['rss_before_mib']:.0f} MiB before)",
            file=out,
            flush=True,
        )
        figures |= {
            f"{name}_seconds": round(report["seconds"], 1),
            f"{name}_entries_per_s": round(report["entries_per_s"]),
            f"{name}_peak_rss_mib": round(report["peak_rss_mib"], 1),
            f"{name}_rss_before_mib": round(report["rss_before_mib"], 1),
        }
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Peak memory and speed of restore --from-topic.")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--code-at", help="restore with restore.py as it was at this commit")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--journal-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(restore_once(args.child, args.code_at, not args.journal_only)))
        return 0
    print(summary_line(run(args.entries, args.code_at)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
