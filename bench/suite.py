"""`make bench`: every benchmark of the project, one after another, then one line of figures.

1. the display gateway's fan-out (`python -m bench.display_fanout`: 1,000, 5,000
   and 10,000 screens, and its own latency under a gift rate);
2. end-to-end latency from the API's 202 to the venue screens
   (`python -m bench.end_to_end`: ledger, API, gateway and screens as
   processes on one broker);
3. giving through WeChat Pay notifications (`python -m bench.giving`: notification →
   journal entry at a steady rate, notifications a second by one API process, the
   donate page);
4. the ledger's ingest, rebuild, verify and receipts (`python -m bench.ingest`);
5. journal exports for accountants (`python -m bench.export`: CSV rows a second and
   peak memory on a 1,000,000-entry journal, built once and kept in var/bench).
6. the closed-loop page of a project with 100,000 gifts (`python -m bench.audit_page`: render
   p50 and p99 through the app, now and as of a past instant; the ledger kept in var/bench).
7. beyond one machine (issue 15): the ledger's ingest on one broker against the local
   three-node cluster with three copies (`python -m bench.cluster`), and the API's gifts a
   second with one and with two API processes (`python -m bench.api_load`).

Each runs as its own process (so no benchmark inherits another's memory or
threads) and prints its full report; the last line is one JSON object with the
headline figures of all of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from bench.measure import summary_line

Figures = dict[str, float | int | str | bool | None]


def display_figures(display: dict[str, Any], e2e: dict[str, Any]) -> Figures:
    """The headline figures of the two display benchmarks' JSON reports."""
    figures: Figures = {}
    for run in display.get("fanout", {}).get("runs", []):
        clients = run["clients"]
        figures[f"fanout_{clients}_last_client_p99_ms"] = run["last_client_ms"]["p99"]
        figures[f"fanout_{clients}_gateway_rss_mib"] = run["gateway_rss_mib"]
        figures[f"fanout_{clients}_delivered_fraction"] = run["delivered_fraction"]
    for run in e2e.get("runs", []):
        key = f"e2e_{run['rate_per_s']}_per_s_coalesce_{run['coalesce_ms']}ms"
        figures[f"{key}_achieved_per_s"] = run["achieved_rate_per_s"]
        figures[f"{key}_p50_ms"] = run["screen_ms"]["p50"]
        figures[f"{key}_p99_ms"] = run["screen_ms"]["p99"]
    return figures


def giving_figures(giving: dict[str, Any]) -> Figures:
    """The headline figures of the giving benchmark's JSON report."""
    figures: Figures = {}
    for run in giving.get("notification_to_journal", []):
        key = f"giving_{run['rate_per_s']:g}_per_s"
        figures[f"{key}_kept_up"] = run["kept_up"]
        figures[f"{key}_journaled_per_s"] = run["journaled_per_s"]
        figures[f"{key}_to_journal_p50_ms"] = run["to_recorded_at_ms"]["p50"]
        figures[f"{key}_to_journal_p99_ms"] = run["to_recorded_at_ms"]["p99"]
        figures[f"{key}_to_journal_seen_p99_ms"] = run["to_seen_ms"]["p99"]
    if "notifications" in giving:
        figures["giving_notifications_confirmed_per_s"] = giving["notifications"]["confirmed_2xx_per_s"]
    if "donate_page" in giving:
        figures["giving_donate_page_per_s"] = giving["donate_page"]["per_s"]
    return figures


def api_load_figures(report: dict[str, Any]) -> Figures:
    """The headline figures of the API load benchmark: per run (by its number of API
    processes) the gifts a second answered 202, the 202's p50/p99, and the CPU of the API
    processes together, of the whole machine and of the rest of it."""
    figures: Figures = {}
    for run in report.get("runs", []):
        key = f"api_{run['api_processes']}_processes"
        cpu = run["cpu_per_s"]
        figures[f"{key}_rate_per_s"] = run["rate_per_s"]
        figures[f"{key}_achieved_per_s"] = run["achieved_rate_per_s"]
        figures[f"{key}_202_p50_ms"] = run["api_202_ms"]["p50"]
        figures[f"{key}_202_p99_ms"] = run["api_202_ms"]["p99"]
        figures[f"{key}_api_cpu_cores"] = round(
            sum(v for name, v in cpu.items() if name.startswith("api_")), 2
        )
        figures[f"{key}_machine_cpu_cores"] = run["machine_cpu_busy_per_s"]
        figures[f"{key}_others_cpu_cores"] = run["others_cpu_per_s"]
    return figures


def _json_report(module: str) -> dict[str, Any]:
    """Run `python -m module`, show its report, and return the JSON it printed."""
    done = subprocess.run([sys.executable, "-m", module], stdout=subprocess.PIPE, text=True, check=True)
    print(done.stdout, end="", flush=True)
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def _streamed_figures(module: str, *args: str) -> Figures:
    """Run a benchmark whose last line is its figures (bench.ingest, bench.cluster) with its
    output streamed (one line behind); return the figures of its last line, which is not
    shown: they end up in the suite's line."""
    last = ""
    with subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if last:  # its own last line (its figures) goes into the suite's
                print(last, end="", flush=True)
            last = line
    if proc.returncode != 0:
        raise SystemExit(f"python -m {module} failed with exit status {proc.returncode}")
    figures: Figures = json.loads(last)
    return figures


def main() -> int:
    print("== display gateway: fan-out and latency (python -m bench.display_fanout)", flush=True)
    display = _json_report("bench.display_fanout")
    print("== end to end: API 202 → screens (python -m bench.end_to_end)", flush=True)
    e2e = _json_report("bench.end_to_end")
    print(
        "== giving: notification → journal, notifications/s, donate page (python -m bench.giving)",
        flush=True,
    )
    giving = _json_report("bench.giving")
    print("== ledger: ingest, rebuild, verify, receipts (python -m bench.ingest)", flush=True)
    ledger = _streamed_figures("bench.ingest")
    print("== journal exports: CSV rows/s and peak memory (python -m bench.export)", flush=True)
    exports = _json_report("bench.export")
    print("== the closed-loop page: 100,000 gifts, render p50/p99 (python -m bench.audit_page)", flush=True)
    audit_page = _json_report("bench.audit_page")
    print(
        "== ingest: one broker against a three-node cluster, three copies (python -m bench.cluster)",
        flush=True,
    )
    cluster = _streamed_figures("bench.cluster")
    print("== API gifts/s: one API process against two (python -m bench.api_load)", flush=True)
    api_load = api_load_figures(_json_report("bench.api_load"))
    figures = {
        **ledger,
        **display_figures(display, e2e),
        **giving_figures(giving),
        **exports,
        **audit_page,
        **cluster,
        **api_load,
    }
    print(summary_line(figures), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
