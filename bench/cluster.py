"""`python -m bench.cluster`: the ledger's ingest on one broker and on a three-node cluster, one run.

Issue 15 asks what replication costs the ledger. One run measures, one after the
other and with the same gifts:

* ``single``: one local KRaft broker (``LocalKafka``, as `python -m bench.ingest`
  and `make run` use), topics with one copy;
* ``cluster``: the local three-node cluster (``LocalKafkaCluster``: three combined
  controller+broker nodes on loopback), topics with three copies and
  ``min.insync.replicas`` 2, the production setting.

For each it does what `python -m bench.ingest` does for one backend: a fresh database
(SQLite by default, PostgreSQL with ``--backend postgresql``), the projects' setup
applied by the real ledger, N confirmed gifts produced before any drain (``acks=all``
and idempotence, as the product produces), then the real ledger started again and
timed from its first observed commit until the last gift is committed and its outcome
is on the outcomes topic; every gift is then checked to be posted exactly once. The
ledger runs with the topics' replication in its settings
(``CHARITY_TOPIC_REPLICATION_FACTOR``, ``CHARITY_TOPIC_MIN_INSYNC_REPLICAS``), so its
own outputs are written with three copies too.

Alongside each drain: the CPU of the ledger's processes, of the brokers and of the whole
machine over the drain, what the rest of the machine (the database server, this
process, other people's work) used meanwhile, and the load average before and after.
Each setup's brokers are stopped before the next one starts.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import workload
from bench.ingest import (
    BACKENDS,
    BackendRun,
    Out,
    TopicEnd,
    database,
    ledger_env,
    machine_description,
    produce,
    run_drain,
    run_setup,
    topic_set,
    verify,
)
from bench.measure import summary_line
from services.contracts import events as ev
from services.contracts.codec import EventCodec
from services.contracts.topics import INPUT_PARTITIONS
from services.platform.db import make_engine
from services.platform.free_ports import free_ports
from services.platform.kafka_admin import Replication
from services.platform.kafka_cluster import LocalKafkaCluster
from services.platform.kafka_launcher import LocalKafka
from services.platform.settings import VAR_DIR

SETUPS = ("single", "cluster")
Figures = dict[str, float | int | str | bool | None]


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster",
        description="The ledger's ingest on one broker (one copy) and on a local three-node cluster "
        "(three copies, two in sync), the same gifts, one run.",
    )
    parser.add_argument(
        "--events", type=int, default=50_000, help="confirmed gifts to drain per setup (default 50000)"
    )
    parser.add_argument(
        "--projects", type=int, default=100, help="projects the gifts spread over (default 100)"
    )
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite", help="the ledger's database")
    parser.add_argument(
        "--order",
        default=",".join(SETUPS),
        help="the setups, in the order they run (default single,cluster)",
    )
    args = parser.parse_args(argv)
    order = [s.strip() for s in args.order.split(",") if s.strip()]
    if not order or set(order) - set(SETUPS) or len(set(order)) != len(order):
        parser.error(f"--order takes each of {', '.join(SETUPS)} at most once; got {args.order!r}")
    if args.events < 2_000:
        parser.error("--events must be at least 2000: a drain of a few batches has no sustained rate")
    args.order = order
    return args


# --- pure: what a setup's figures are ----------------------------------------------------------


@dataclass(frozen=True)
class SetupResult:
    setup: str
    nodes: int
    replication: Replication
    events_per_s: float
    quarters: list[float]
    produce_per_s: float
    ledger_cores: float | None
    broker_cores: float | None
    machine_cores: float | None
    load_before: float
    load_after: float
    peak_rss_mb: float | None

    @property
    def others_cores(self) -> float | None:
        """What the rest of the machine used during the drain: the database server, this
        process's polling, and other people's work."""
        if self.machine_cores is None or self.ledger_cores is None or self.broker_cores is None:
            return None
        return max(0.0, self.machine_cores - self.ledger_cores - self.broker_cores)

    @property
    def ledger_cpu_us_per_event(self) -> float | None:
        return None if self.ledger_cores is None else self.ledger_cores / self.events_per_s * 1e6

    @property
    def broker_cpu_us_per_event(self) -> float | None:
        return None if self.broker_cores is None else self.broker_cores / self.events_per_s * 1e6


def summary_figures(results: list[SetupResult], events: int, backend: str) -> Figures:
    """The JSON line: each setup's figures under its name, and the cluster's rate as a share
    of the single broker's when both ran."""
    figures: Figures = {"cluster_bench_events": events, "cluster_bench_backend": backend}
    for r in results:
        key = f"ingest_{r.setup}"
        figures[f"{key}_rf"] = r.replication.factor
        figures[f"{key}_min_insync"] = r.replication.min_insync
        figures[f"{key}_events_per_s"] = r.events_per_s
        figures[f"{key}_produce_per_s"] = r.produce_per_s
        figures[f"{key}_ledger_cpu_cores"] = r.ledger_cores
        figures[f"{key}_ledger_cpu_us_per_event"] = r.ledger_cpu_us_per_event
        figures[f"{key}_broker_cpu_cores"] = r.broker_cores
        figures[f"{key}_broker_cpu_us_per_event"] = r.broker_cpu_us_per_event
        figures[f"{key}_machine_cpu_cores"] = r.machine_cores
        figures[f"{key}_others_cpu_cores"] = r.others_cores
        figures[f"{key}_load_before"] = r.load_before
        figures[f"{key}_load_after"] = r.load_after
    by_setup = {r.setup: r for r in results}
    if "single" in by_setup and "cluster" in by_setup:
        figures["ingest_cluster_vs_single"] = (
            by_setup["cluster"].events_per_s / by_setup["single"].events_per_s
        )
    return figures


def load_average(text: str) -> float:
    """The one-minute load average from the text of /proc/loadavg."""
    return float(text.split()[0])


# --- the brokers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Brokers:
    bootstrap: str
    pids: list[int]
    replication: Replication


@contextlib.contextmanager
def brokers(setup: str, out: Out) -> Iterator[Brokers]:
    """The setup's brokers, started in var/bench-cluster/<setup> on free ports, stopped and
    removed afterwards (one left by an interrupted run is found by its pid files first)."""
    data_dir = VAR_DIR / "bench-cluster" / setup
    started = time.monotonic()
    if setup == "single":
        LocalKafka(data_dir).stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        port, controller = free_ports(2)
        broker = LocalKafka(data_dir, port=port, controller_port=controller)
        stop = broker.stop
        broker.start(timeout=120.0)  # stops what it started if it does not come up
        nodes = [broker]
        replication = Replication()
    else:
        if data_dir.exists():
            LocalKafkaCluster(data_dir).stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        ports = free_ports(6)
        cluster = LocalKafkaCluster(data_dir, ports=[(ports[i], ports[i + 1]) for i in range(0, 6, 2)])
        stop = cluster.stop
        cluster.start(timeout=180.0)  # stops what it started if it does not come up
        nodes = cluster.nodes
        replication = cluster.replication
    try:
        pids = [pid for node in nodes if (pid := node.pid) is not None]
        bootstrap = ",".join(node.bootstrap for node in nodes)
        out(
            f"{setup}: {len(nodes)} node(s) at {bootstrap}, up in {time.monotonic() - started:.1f}s; "
            f"topics with {replication.factor} cop{'y' if replication.factor == 1 else 'ies'}, "
            f"min.insync.replicas {replication.min_insync}"
        )
        yield Brokers(bootstrap, pids, replication)
    finally:
        stop()
        shutil.rmtree(data_dir, ignore_errors=True)


# --- one setup ----------------------------------------------------------------------------------


def loadavg_now() -> float:
    return load_average(Path("/proc/loadavg").read_text())


def run_setup_on(
    setup: str,
    backend: str,
    setup_events: list[ev.Event],
    gifts: list[ev.DonationConfirmed],
    workdir: Path,
    out: Out,
) -> SetupResult:
    codec = EventCodec()
    workdir = workdir / setup
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = loadavg_now()
    with contextlib.ExitStack() as stack:
        stack.callback((workdir / "tree-head-ed25519.pem").unlink, missing_ok=True)
        kafka = stack.enter_context(brokers(setup, out))
        topics = stack.enter_context(topic_set(kafka.bootstrap, kafka.replication))
        produce(kafka.bootstrap, topics, setup_events, codec)
        url = stack.enter_context(database(backend, workdir))
        engine = make_engine(url, writer=False)
        stack.callback(engine.dispose)
        group = f"{topics.prefix}ledger-{backend}"
        env = {
            **ledger_env(url, kafka.bootstrap, topics, group, workdir),
            "CHARITY_TOPIC_REPLICATION_FACTOR": str(kafka.replication.factor),
            "CHARITY_TOPIC_MIN_INSYNC_REPLICAS": str(kafka.replication.min_insync),
        }
        run = BackendRun(backend, url, engine, env)
        run_setup(run, workdir, len(setup_events))
        seconds = produce(kafka.bootstrap, topics, list(gifts), codec)
        out(f"{setup}: produced {len(gifts)} gifts ({len(gifts) / seconds:,.0f}/s, acks=all, idempotent)")
        outcomes = TopicEnd(kafka.bootstrap, topics.outcomes, INPUT_PARTITIONS)
        stack.callback(outcomes.close)
        run_drain(run, workdir, len(gifts), outcomes, None, broker_pids=kafka.pids)
        verify(run, gifts, len(setup_events))
    assert run.drain is not None
    result = SetupResult(
        setup=setup,
        nodes=len(kafka.pids),
        replication=kafka.replication,
        events_per_s=run.drain.per_s,
        quarters=run.quarters,
        produce_per_s=len(gifts) / seconds,
        ledger_cores=run.ledger_cores,
        broker_cores=run.broker_cores,
        machine_cores=run.machine_cores,
        load_before=load_before,
        load_after=loadavg_now(),
        peak_rss_mb=run.rss_mb,
    )
    report(result, run.drain.events, run.drain.seconds, out)
    return result


def _cores(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def report(r: SetupResult, events: int, seconds: float, out: Out) -> None:
    out(
        f"{r.setup} (RF {r.replication.factor}, min ISR {r.replication.min_insync}): "
        f"{r.events_per_s:,.0f} events/s sustained ({events} events in {seconds:.2f}s); "
        "every gift posted once, totals add up"
    )
    out("  events/s by quarter of the drain: " + " / ".join(f"{q:,.0f}" for q in r.quarters))
    out(
        f"  CPU during the drain, cores: ledger + helpers {_cores(r.ledger_cores)}, "
        f"brokers {_cores(r.broker_cores)}, rest of the machine {_cores(r.others_cores)}, "
        f"whole machine {_cores(r.machine_cores)} of {os.cpu_count()}; "
        f"load average {r.load_before:.2f} before, {r.load_after:.2f} after"
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    out = Out(quiet=False)
    workdir = VAR_DIR / "bench" / f"cluster-{time.strftime('%Y%m%d-%H%M%S')}"
    workdir.mkdir(parents=True, exist_ok=True)
    out(
        f"cluster ingest bench: {args.events} confirmed gifts over {args.projects} projects, "
        f"{args.backend}, setups {', '.join(args.order)}"
    )
    out(f"machine: {machine_description()}; run directory {workdir}")
    now = ev.utc_now_ms()
    ids = workload.project_ids(args.projects)
    setup_events = workload.opened_projects(ids, now)
    gifts = list(workload.confirmed_gifts(args.events, ids, now))
    results = [run_setup_on(setup, args.backend, setup_events, gifts, workdir, out) for setup in args.order]
    print(summary_line(summary_figures(results, args.events, args.backend)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
