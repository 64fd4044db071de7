"""The API under a steady rate of confirmed donations, with the ledger and broker behind it.

    .venv/bin/python -m bench.api_load --rate 800 --seconds 10

The stack of the end-to-end benchmark (a local broker, the ledger and the API as
processes) without gateway or screens, posted to at an open-loop rate over 16
keep-alive connections after a warm-up; prints the rate achieved, the `202`
times and the CPU each process and the whole machine used meanwhile. For
comparing changes to the API's request path.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench.display_fanout import PROJECTS, bench_topics
from bench.end_to_end import (
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
WARMUP = (300, 2_000)  # posts a second, posts


def main() -> None:
    parser = argparse.ArgumentParser(description="the API under a steady rate of confirmed donations")
    parser.add_argument("--rate", type=float, default=800)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    with (
        broker() as (kafka, broker_pid),
        bench_topics(kafka) as topics,
        tempfile.TemporaryDirectory(prefix="api-load-") as tmp,
        running_stack(kafka, topics, Path(tmp)) as stack,
    ):
        open_projects(stack.api_url, PROJECTS)
        asyncio.run(post_at_rate(stack.api_url, WARMUP[0], WARMUP[1], CONNECTIONS))
        ledger = stack.ledger.proc.pid
        pids = {"api": [stack.api.proc.pid], "ledger": [ledger, *children_of(ledger)]}
        if broker_pid is not None:
            pids["broker"] = [broker_pid]
        before = {name: cpu_seconds(*group) for name, group in pids.items()}
        busy_before, started = machine_busy(), time.monotonic()
        _, posted = asyncio.run(
            post_at_rate(stack.api_url, args.rate, int(args.rate * args.seconds), CONNECTIONS)
        )
        elapsed = time.monotonic() - started
        busy = machine_busy() - busy_before
        accepted = [p for p in posted if p.status == 202]
        out = {
            "rate_per_s": args.rate,
            "accepted_202": len(accepted),
            "achieved_rate_per_s": round(len(accepted) / elapsed, 1),
            "api_202_ms": summary_ms([p.answered_at - p.sent_at for p in accepted]),
            "cpu_per_s": {
                name: round((cpu_seconds(*group) - before[name]) / elapsed, 2) for name, group in pids.items()
            },
            "machine_cpu_busy_per_s": round(busy / elapsed, 2),
        }
        print(json.dumps(out))


if __name__ == "__main__":
    main()
