"""`python -m bench.export`: journal exports on a large journal: CSV rows a second and peak memory.

1. builds a SQLite journal of N entries (default 1,000,000) with the same builder,
   workload, rules and store as the ledger-core benchmark (`bench.journal.build_journal`),
   or reuses the one an earlier run left in var/bench/export-journal-<N>.db;
2. in a fresh child process each (so one export's memory is not another's), streams
   - the CSV of every project (the whole journal), and
   - the CSV and the XLSX of one project (a hundredth of it)
   through the read side (`JournalExport`, `csv_chunks`, `write_xlsx`) into a
   null sink or a temporary file, and reports rows, seconds and the child's peak RSS
   (VmHWM) before and after the export, and rows per second of the wall clock and of
   the child's CPU time (the machine may be shared). Bounded memory shows as the same
   peak for the whole journal as for a hundredth of it.

Prints the report to stderr as it goes; the last line (stdout) is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import journal as journal_bench
from bench import workload
from bench.measure import peak_rss_mb, summary_line
from services.ledger.read import JournalExport, csv_chunks, open_read_engine, write_xlsx
from services.platform.settings import VAR_DIR

Figures = dict[str, float | int | str | bool | None]


def journal_path(entries: int) -> Path:
    return VAR_DIR / "bench" / f"export-journal-{entries}.db"


def ensure_journal(entries: int) -> tuple[Path, float | None]:
    """The journal of `entries`, built unless an earlier run left it; the seconds building took."""
    path = journal_path(entries)
    if path.exists():
        return path, None
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_suffix(".building")
    for suffix in ("", "-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    store, _ = journal_bench.build_journal(f"sqlite:///{building}", entries)
    store.engine.dispose()
    seconds = time.perf_counter() - started
    building.rename(path)  # only a whole journal is ever reused
    for suffix in ("-wal", "-shm"):
        Path(f"{building}{suffix}").unlink(missing_ok=True)
    return path, seconds


def _own_peak_rss_mb() -> float:
    return peak_rss_mb(Path("/proc/self/status").read_text())


def export_once(database: Path, project: str | None, fmt: str) -> dict[str, Any]:
    """One export in this process (the child's side): rows, bytes, seconds, peak RSS before and after."""
    engine = open_read_engine(f"sqlite:///{database}")
    reader = JournalExport(engine)
    projects = None if project is None else {project}
    before = _own_peak_rss_mb()
    rows = 0

    def counted() -> Any:
        nonlocal rows
        for line in reader.lines(projects):
            rows += 1
            yield line

    started, cpu_started = time.perf_counter(), time.process_time()
    if fmt == "csv":
        size = sum(len(chunk) for chunk in csv_chunks(counted()))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "journal.xlsx"
            write_xlsx(counted(), path)
            size = path.stat().st_size
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    engine.dispose()
    return {
        "rows": rows,
        "bytes": size,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        # On a shared machine the wall clock counts other processes' turns too; this does not.
        "rows_per_cpu_s": rows / cpu_seconds,
        "rss_before_mib": before,
        "peak_rss_mib": _own_peak_rss_mb(),
    }


def in_child(database: Path, project: str | None, fmt: str) -> dict[str, Any]:
    args = [sys.executable, "-m", "bench.export", "--child", str(database), "--format", fmt]
    if project is not None:
        args += ["--project", project]
    done = subprocess.run(args, stdout=subprocess.PIPE, text=True, check=True)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def run(entries: int, out: Any = sys.stderr) -> Figures:
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"journal exports: a journal of {entries:,} entries; load average {load}", file=out, flush=True)
    database, built_s = ensure_journal(entries)
    print(
        f"  journal {database}: " + (f"built in {built_s:.1f}s" if built_s is not None else "reused"),
        file=out,
        flush=True,
    )
    one = workload.project_ids(journal_bench.PROJECTS)[0]
    figures: Figures = {"entries": entries, "journal_built_s": None if built_s is None else round(built_s, 1)}
    for name, project, fmt in (("csv_all", None, "csv"), ("csv_one", one, "csv"), ("xlsx_one", one, "xlsx")):
        report = in_child(database, project, fmt)
        what = "every project" if project is None else project
        print(
            f"  {fmt.upper()} of {what}: {report['rows']:,} rows, {report['bytes'] / 2**20:,.1f} MiB "
            f"in {report['seconds']:.1f}s ({report['rows_per_s']:,.0f} rows/s, "
            f"{report['rows_per_cpu_s']:,.0f} a CPU second); peak RSS "
            f"{report['peak_rss_mib']:.0f} MiB ({report['rss_before_mib']:.0f} MiB before the export)",
            file=out,
            flush=True,
        )
        figures |= {
            f"{name}_rows": report["rows"],
            f"{name}_rows_per_s": round(report["rows_per_s"]),
            f"{name}_rows_per_cpu_s": round(report["rows_per_cpu_s"]),
            f"{name}_seconds": round(report["seconds"], 1),
            f"{name}_peak_rss_mib": round(report["peak_rss_mib"], 1),
            f"{name}_rss_before_mib": round(report["rss_before_mib"], 1),
        }
    return figures


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.export", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--entries", type=int, default=1_000_000, help="journal entries (default 1000000)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--project", help=argparse.SUPPRESS)
    parser.add_argument("--format", choices=("csv", "xlsx"), default="csv", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(export_once(args.child, args.project, args.format)), flush=True)
        return 0
    if args.entries < journal_bench.PROJECTS * 3 + 1:
        parser.error(f"--entries must be more than the {journal_bench.PROJECTS} projects' setup")
    print(summary_line({f"export_{k}": v for k, v in run(args.entries).items()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
