"""The API under a steady rate of confirmed donations, with the ledger and broker behind it:
one API process against two, in one run.

    .venv/bin/python -m bench.api_load --rate 1500 --seconds 10 --processes 1,2

The stack of the end-to-end benchmark (a local broker, the ledger and the API as
processes) without gateway or screens, with two API processes (the same settings, each
on its own port) started side by side. After a warm-up of both, it posts at an
open-loop rate over 16 keep-alive connections, first to one process only, then to both
(the connections spread over them in turn, as a round-robin balancer would: no balancer
process of its own, which would take a share of the same two cores); prints per run the
gifts a second answered `202`, the `202` times, the CPU of each API process, the
ledger, the broker and this poster, the whole machine's and the rest of it, and the load
average. Same broker, same ledger, same database for every run. For comparing changes to
the API's request path (``--processes 1``) and for what a second process brings.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.display_fanout import PROJECTS, bench_topics
from bench.end_to_end import (
    Posted,
    broker,
    cpu_seconds,
    machine_busy,
    open_projects,
    post_at_rate,
    running_stack,
    summary_ms,
)
from bench.procfs import children_of

CONNECTIONS = 16
WARMUP = (300, 2_000)  # posts a second, posts (spread over every API process)


def parse_processes(text: str) -> list[int]:
    """``--processes 1,2``: how many API processes each run posts to, in order."""
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or any(n < 1 for n in counts):
        raise argparse.ArgumentTypeError(f"a comma-separated list of process counts, each >= 1: {text!r}")
    return counts


def run_report(
    processes: int,
    rate: float,
    posted: list[Posted],
    elapsed: float,
    cpu_used: dict[str, float],
    machine_busy_s: float,
    load: tuple[float, float],
) -> dict[str, Any]:
    """One run's figures: CPU as cores (seconds per second of posting); "others" is whatever
    ran on the machine besides the processes measured (other people's work included)."""
    accepted = [p for p in posted if p.status == 202]
    return {
        "api_processes": processes,
        "rate_per_s": rate,
        "posted": len(posted),
        "accepted_202": len(accepted),
        "achieved_rate_per_s": round(len(accepted) / elapsed, 1),
        "api_202_ms": summary_ms([p.answered_at - p.sent_at for p in accepted]),
        "behind_schedule_ms": summary_ms([p.sent_at - p.scheduled_at for p in posted]),
        "cpu_per_s": {name: round(used / elapsed, 2) for name, used in cpu_used.items()},
        "machine_cpu_busy_per_s": round(machine_busy_s / elapsed, 2),
        "others_cpu_per_s": round(max(0.0, machine_busy_s - sum(cpu_used.values())) / elapsed, 2),
        "load_average_before": load[0],
        "load_average_after": load[1],
    }


def _loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description="the API under a steady rate of confirmed donations")
    parser.add_argument("--rate", type=float, default=1500, help="posts a second, open loop (default 1500)")
    parser.add_argument("--seconds", type=float, default=10, help="per run (default 10)")
    parser.add_argument(
        "--processes",
        type=parse_processes,
        default=[1, 2],
        help="API processes posted to in each run, in order (default 1,2)",
    )
    args = parser.parse_args()
    started_processes = max(args.processes)
    with (
        broker() as (kafka, broker_pid),
        bench_topics(kafka) as topics,
        tempfile.TemporaryDirectory(prefix="api-load-") as tmp,
        running_stack(kafka, topics, Path(tmp), apis=started_processes) as stack,
    ):
        urls = [url for _, url in stack.apis]
        open_projects(stack.api_url, PROJECTS)
        asyncio.run(post_at_rate(urls, WARMUP[0], WARMUP[1], CONNECTIONS))
        ledger = stack.ledger.proc.pid
        pids = {f"api_{n}": [api.proc.pid] for n, (api, _) in enumerate(stack.apis, start=1)}
        pids["ledger"] = [ledger, *children_of(ledger)]
        pids["poster"] = [os.getpid()]
        if broker_pid is not None:
            pids["broker"] = [broker_pid]
        runs = []
        for processes in args.processes:
            load_before = _loadavg()
            before = {name: cpu_seconds(*group) for name, group in pids.items()}
            busy_before, started = machine_busy(), time.monotonic()
            _, posted = asyncio.run(
                post_at_rate(urls[:processes], args.rate, int(args.rate * args.seconds), CONNECTIONS)
            )
            elapsed = time.monotonic() - started
            used = {name: cpu_seconds(*group) - before[name] for name, group in pids.items()}
            runs.append(
                run_report(
                    processes,
                    args.rate,
                    posted,
                    elapsed,
                    used,
                    machine_busy() - busy_before,
                    (load_before, _loadavg()),
                )
            )
        out = {
            "rate_per_s": args.rate,
            "seconds": args.seconds,
            "connections": CONNECTIONS,
            "cpus": os.cpu_count(),
            "runs": runs,
        }
        print(json.dumps(out))


if __name__ == "__main__":
    main()
