"""`python -m bench.ingest`: the ledger's sustained drain rate and peak RSS, per database backend.

What one run does, in order:

1. starts a private Kafka broker in var/bench-kafka on free ports (or uses the
   one named by CHARITY_BENCH_KAFKA_BOOTSTRAP) and creates a fresh topic set
   under a run prefix;
2. per backend (a fresh SQLite file, a fresh PostgreSQL database): runs the real
   ledger process once to apply the projects' setup events (registered,
   approved, opened), then stops it, so every gift finds its project open;
3. produces N confirmed gifts, all before any ledger drains them;
4. the raw ceiling: a consumer in this process reads the gifts with the
   ledger's fetch settings and batch size and decodes them, no database;
5. per backend: starts `python -m services.cli ledger` again and polls the
   database's chain head; the rate is from the first observed commit to the
   moment the last gift is committed and its outcome is on the outcomes topic.
   Peak RSS is the VmHWM of that ledger process plus its children's (its
   intake, its output publisher, multiprocessing's resource tracker); CPU is
   theirs too.

The last line printed is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kafka import KafkaConsumer, TopicPartition
from sqlalchemy import Engine, func, select

from bench import journal as journal_bench
from bench import profile as spy_profile
from bench import takeover, workload
from bench.measure import (
    Drain,
    machine_busy_seconds,
    peak_rss_mb,
    process_cpu_seconds,
    rates_by_part,
    summary_line,
    sustained_drain,
)
from bench.procfs import children_of
from services.contracts import events as ev
from services.contracts.codec import EventCodec
from services.contracts.topics import INPUT_PARTITIONS, Topics
from services.ledger.adapters import tables as t
from services.ledger.adapters.kafka_intake import make_consumer
from services.ledger.adapters.store import LedgerStore
from services.ledger.service.ports import RawRecord
from services.platform.db import make_engine
from services.platform.free_ports import free_ports
from services.platform.kafka_admin import Replication, delete_topics, ensure_topics, wait_for_broker
from services.platform.kafka_io import make_producer
from services.platform.kafka_launcher import LocalKafka
from services.platform.scratch_postgres import local_postgres_url, scratch_database
from services.platform.settings import REPO_ROOT, VAR_DIR, Settings

BACKENDS = ("sqlite", "postgresql")
KAFKA_ENV = "CHARITY_BENCH_KAFKA_BOOTSTRAP"
POSTGRES_ENV = "CHARITY_BENCH_POSTGRES_URL"
POLL_S = 0.02
STALL_TIMEOUT_S = 120.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description="Drain N pre-produced confirmed gifts through the real ledger; "
        "report events/s and peak RSS per backend, and the raw consume+decode ceiling.",
    )
    parser.add_argument(
        "--events", type=int, default=100_000, help="confirmed gifts to drain (default 100000)"
    )
    parser.add_argument(
        "--projects", type=int, default=100, help="projects the gifts spread over (default 100)"
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated, of: sqlite, postgresql (default both)",
    )
    parser.add_argument("--skip-raw", action="store_true", help="skip the consume+decode ceiling")
    parser.add_argument(
        "--takeovers",
        type=int,
        default=3,
        help="also time a standby ledger taking over from a killed one, this many times (0: skip)",
    )
    parser.add_argument(
        "--journal-entries",
        type=int,
        default=1_000_000,
        help="also time rebuild, verify and receipts on a SQLite journal of this many entries (0: skip)",
    )
    parser.add_argument("--json-only", action="store_true", help="print only the final JSON line")
    parser.add_argument(
        "--profile",
        choices=["py-spy", "cprofile"],
        help="run each drain under a profiler (slows it down: the figures are then not the benchmark's); "
        "output goes to the run directory",
    )
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown or not backends:
        parser.error(f"--backends takes {', '.join(BACKENDS)}; got {args.backends!r}")
    if args.events < 2_000:
        parser.error("--events must be at least 2000: a drain of a few batches has no sustained rate")
    args.backends = backends
    return args


class Out:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, line: str) -> None:
        if not self.quiet:
            print(line, flush=True)


# --- what the benchmark runs against --------------------------------------------------


@contextlib.contextmanager
def kafka_broker(out: Out) -> Iterator[str]:
    external = os.environ.get(KAFKA_ENV)
    if external:
        wait_for_broker(external, timeout=30.0)
        out(f"broker: {external} (from {KAFKA_ENV})")
        yield external
        return
    data_dir = VAR_DIR / "bench-kafka"
    LocalKafka(data_dir).stop()  # one left behind by an interrupted run (found by its pid file)
    shutil.rmtree(data_dir, ignore_errors=True)
    port, controller_port = free_ports(2)
    broker = LocalKafka(data_dir, port=port, controller_port=controller_port)
    started = time.monotonic()
    try:
        broker.start(timeout=120.0)
        out(f"broker: local KRaft broker at {broker.bootstrap}, up in {time.monotonic() - started:.1f}s")
        yield broker.bootstrap
    finally:
        broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def topic_set(bootstrap: str, replication: Replication | None = None) -> Iterator[Topics]:
    topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.")
    specs = topics.specs()
    ensure_topics(bootstrap, specs, replication=replication)
    try:
        yield topics
    finally:
        with contextlib.suppress(Exception):
            delete_topics(bootstrap, [s.name for s in specs])


def postgres_base_url() -> str:
    return os.environ.get(POSTGRES_ENV) or local_postgres_url()


@contextlib.contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """A fresh, empty ledger database for one backend, removed afterwards."""
    if backend == "sqlite":
        path = workdir / "ledger-sqlite.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        return
    with scratch_database(postgres_base_url(), "bench") as url:
        yield url


# --- the ledger process ----------------------------------------------------------------


@dataclass
class LedgerProcess:
    """`python -m services.cli ledger`, possibly under a profiler that started it."""

    process: subprocess.Popen[bytes]
    log: Path
    profile: str | None

    @classmethod
    def start(
        cls, env: dict[str, str], log: Path, profile: str | None = None, profile_out: Path | None = None
    ) -> LedgerProcess:
        command = [sys.executable, "-m", "services.cli", "ledger"]
        if profile == "cprofile":
            command = [sys.executable, "-m", "cProfile", "-o", str(profile_out), *command[1:]]
        elif profile == "py-spy":
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            if not Path(py_spy).exists():
                raise RuntimeError("--profile py-spy needs py-spy (pip install py-spy)")
            command = [
                py_spy, "record", "--format", "raw", "--threads", "--idle", "--nonblocking", "--rate", "100",
                "-o", str(profile_out), "--", *command,
            ]  # fmt: skip
        with log.open("ab") as handle:
            process = subprocess.Popen(
                command,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
        return cls(process, log, profile)

    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def ledger_pid(self) -> int | None:
        """The ledger's own pid: under py-spy it is py-spy's child."""
        if self.profile != "py-spy":
            return self.process.pid
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with contextlib.suppress(OSError, ValueError):
            children = path.read_text().split()
            return int(children[0]) if children else None
        return None

    @property
    def ledger_pids(self) -> list[int]:
        """The ledger and the processes it started (intake, publisher, resource tracker)."""
        pid = self.ledger_pid
        return [] if pid is None else [pid, *children_of(pid)]

    def peak_rss_mb(self) -> float | None:
        """The sum of the ledger's processes' VmHWM (each one's own peak, so an upper bound of
        their peak together); None under cProfile, whose own tables would be counted too."""
        pids = self.ledger_pids
        if not pids or self.profile == "cprofile":
            return None
        return sum(peak_rss_mb(Path(f"/proc/{pid}/status").read_text()) for pid in pids)

    def stop(self) -> None:
        """SIGTERM to the ledger (a profiler then writes its output and exits with it)."""
        if not self.alive():
            return
        pid = self.ledger_pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid if pid is not None else self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait(timeout=10)

    def failure(self, what: str) -> RuntimeError:
        tail = self.log.read_text(errors="replace").splitlines()[-30:]
        return RuntimeError(f"ledger {what}; last lines of {self.log}:\n" + "\n".join(tail))


def ledger_env(settings_db: str, bootstrap: str, topics: Topics, group: str, workdir: Path) -> dict[str, str]:
    defaults = Settings()
    return {
        # A throwaway tree-head key: the benchmark never touches the real one in var/keys.
        "CHARITY_SIGNING_KEY": str(workdir / "tree-head-ed25519.pem"),
        "CHARITY_CREATE_SIGNING_KEY": "true",  # a scratch database, PostgreSQL too
        "CHARITY_DATABASE_URL": settings_db,
        "CHARITY_KAFKA_BOOTSTRAP": bootstrap,
        "CHARITY_TOPIC_PREFIX": topics.prefix,
        "CHARITY_LEDGER_GROUP": group,
        "CHARITY_LEDGER_INSTANCE_ID": f"{group}-1",
        "CHARITY_LEDGER_HTTP_PORT": str(free_ports(1)[0]),
        # The deployed micro-batch bounds: the benchmark measures the ledger as it runs.
        "CHARITY_BATCH_MAX_RECORDS": str(defaults.batch_max_records),
        "CHARITY_BATCH_MAX_WAIT_MS": str(defaults.batch_max_wait_ms),
    }


TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _cpu_of(pids: Sequence[int]) -> float:
    """User + system CPU seconds of these processes so far (gone ones count nothing)."""
    used = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            used += process_cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), TICKS_PER_S)
    return used


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds used so far by the ledger's processes, by the brokers (when their pids are
    known), and by the whole machine (busy, total)."""

    ledger: float
    machine_busy: float
    machine_total: float
    brokers: float = 0.0

    @classmethod
    def take(cls, pids: list[int], broker_pids: Sequence[int] = ()) -> CpuSnapshot:
        busy, total = machine_busy_seconds(Path("/proc/stat").read_text(), TICKS_PER_S)
        return cls(_cpu_of(pids), busy, total, _cpu_of(broker_pids))

    def cores_since(self, earlier: CpuSnapshot, seconds: float) -> tuple[float, float]:
        """(ledger, machine) cores busy on average between the two snapshots."""
        return (self.ledger - earlier.ledger) / seconds, (self.machine_busy - earlier.machine_busy) / seconds


def chain_length(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(t.chain_head.c.seq).where(t.chain_head.c.id == 1)) or 0)


def watch_until(
    ledger: LedgerProcess,
    engine: Engine,
    target: int,
    poll_s: float = POLL_S,
    on_progress: Callable[[], None] | None = None,
) -> list[tuple[float, int]]:
    """Poll the chain head until it reaches ``target``; the (time, count) of each change.

    ``on_progress`` is called once, right after the first change is observed.
    """
    samples: list[tuple[float, int]] = []
    last, last_change = -1, time.monotonic()
    while True:
        count = chain_length(engine)
        now = time.monotonic()
        if count != last:
            samples.append((now, count))
            last, last_change = count, now
            if len(samples) == 2 and on_progress is not None:
                on_progress()
        if count >= target:
            return samples
        if not ledger.alive():
            raise ledger.failure(f"exited with {ledger.process.returncode} at {count} of {target} entries")
        if now - last_change > STALL_TIMEOUT_S:
            raise ledger.failure(
                f"made no progress for {STALL_TIMEOUT_S:.0f}s at {count} of {target} entries"
            )
        time.sleep(poll_s)


class TopicEnd:
    """The summed end offsets of one topic: how many records it holds."""

    def __init__(self, bootstrap: str, topic: str, partitions: int) -> None:
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap, client_id="charity-bench-watch")
        self._parts = [TopicPartition(topic, p) for p in range(partitions)]

    def count(self) -> int:
        return sum(self._consumer.end_offsets(self._parts).values())

    def wait_for(self, target: int, timeout: float = 60.0, poll_s: float = POLL_S) -> float:
        deadline = time.monotonic() + timeout
        while (count := self.count()) < target:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {count} of {target} records on the topic after {timeout:.0f}s")
            time.sleep(poll_s)
        return time.monotonic()

    def close(self) -> None:
        self._consumer.close()


# --- the phases ------------------------------------------------------------------------


def produce(bootstrap: str, topics: Topics, events: list[ev.Event], codec: EventCodec) -> float:
    """Send every event, keyed by project, and wait for the broker; the seconds it took."""
    producer = make_producer(bootstrap, linger_ms=20, batch_size=1024 * 1024, client_id="charity-bench")
    started = time.monotonic()
    try:
        for e in events:
            producer.send(f"{topics.prefix}{e.topic_base}", key=e.project_id.encode(), value=codec.encode(e))
        producer.flush(timeout=300)
    finally:
        producer.close(timeout=10)
    return time.monotonic() - started


def raw_ceiling(bootstrap: str, topics: Topics, expected: int, codec: EventCodec) -> Drain:
    """Consume and decode the gifts as the ledger's loop does, with nothing behind it."""
    settings = Settings()
    consumer = make_consumer(bootstrap, f"{topics.prefix}raw", client_id="charity-bench-raw")
    # Assigned, not subscribed: one reader needs no group, and no rebalance to wait for.
    consumer.assign(
        [TopicPartition(topics.donations, p) for p in consumer.partitions_for_topic(topics.donations)]
    )
    samples: list[tuple[float, int]] = []
    seen = 0
    deadline = time.monotonic() + STALL_TIMEOUT_S
    try:
        while seen < expected:
            polled = consumer.poll(
                timeout_ms=settings.batch_max_wait_ms, max_records=settings.batch_max_records
            )
            records = [
                RawRecord(m.topic, m.partition, m.offset, m.key, m.value)
                for messages in polled.values()
                for m in messages
            ]
            for record in records:
                codec.decode(record.value)
            if records:
                seen += len(records)
                samples.append((time.monotonic(), seen))
                deadline = time.monotonic() + STALL_TIMEOUT_S
            elif time.monotonic() > deadline:
                raise RuntimeError(f"raw consumer stalled at {seen} of {expected} records")
    finally:
        consumer.close(autocommit=False)
    return sustained_drain(samples, 0, samples[-1])


@dataclass
class BackendRun:
    backend: str
    url: str
    engine: Engine
    env: dict[str, str]
    drain: Drain | None = None
    rss_mb: float | None = None
    wall_s: float = 0.0
    ledger_cores: float | None = None  # CPU the ledger's processes used during the drain, in cores
    machine_cores: float | None = None  # CPU the whole machine used meanwhile (broker, database, others)
    broker_cores: float | None = None  # CPU of the brokers meanwhile, when their pids were given
    quarters: list[float] = field(default_factory=list)  # events/s in each quarter of the drain

    @property
    def cpu_us_per_event(self) -> float | None:
        """Ledger CPU per applied event: unlike events/s, barely moved by other load on the machine."""
        if self.ledger_cores is None or self.drain is None:
            return None
        return self.ledger_cores / self.drain.per_s * 1e6


def run_setup(run: BackendRun, workdir: Path, setup_events: int) -> None:
    """Apply the projects' setup events with the real ledger, then stop it."""
    LedgerStore(make_engine(run.url)).migrate()  # so progress can be read before the ledger migrates
    ledger = LedgerProcess.start(run.env, workdir / f"ledger-{run.backend}.log")
    try:
        watch_until(ledger, run.engine, setup_events, poll_s=0.1)
    finally:
        ledger.stop()
    if chain_length(run.engine) != setup_events:
        raise RuntimeError(f"{run.backend}: expected {setup_events} setup entries")


def run_drain(
    run: BackendRun,
    workdir: Path,
    gifts: int,
    outcomes: TopicEnd,
    profile: str | None,
    broker_pids: Sequence[int] = (),
) -> None:
    baseline = chain_length(run.engine)
    outcomes_before = outcomes.count()
    suffix = "prof" if profile == "cprofile" else "txt"
    ledger = LedgerProcess.start(
        run.env, workdir / f"ledger-{run.backend}.log", profile, workdir / f"profile-{run.backend}.{suffix}"
    )
    started = time.monotonic()
    cpu: list[CpuSnapshot] = []
    try:
        samples = watch_until(
            ledger,
            run.engine,
            baseline + gifts,
            on_progress=lambda: cpu.append(CpuSnapshot.take(ledger.ledger_pids, broker_pids)),
        )
        # Committed is not yet done: the batch's outcomes, feed items and totals
        # must be on the broker too.
        done_at = outcomes.wait_for(outcomes_before + gifts)
        cpu.append(CpuSnapshot.take(ledger.ledger_pids, broker_pids))
        run.rss_mb = ledger.peak_rss_mb()
    finally:
        ledger.stop()
    run.wall_s = done_at - started
    run.drain = sustained_drain(samples, baseline, (done_at, baseline + gifts))
    run.quarters = rates_by_part([s for s in samples if s[1] > baseline], 4)
    if len(cpu) == 2:
        run.ledger_cores, run.machine_cores = cpu[1].cores_since(cpu[0], run.drain.seconds)
        if broker_pids:
            run.broker_cores = (cpu[1].brokers - cpu[0].brokers) / run.drain.seconds


def verify(run: BackendRun, gifts: list[ev.DonationConfirmed], setup_events: int) -> None:
    """Every gift posted exactly once, and the projections add up to what was sent."""
    with run.engine.connect() as conn:
        total = conn.scalar(select(func.count()).select_from(t.journal))
        posted = conn.scalar(
            select(func.count())
            .select_from(t.journal)
            .where(t.journal.c.kind == "DonationConfirmed", t.journal.c.decision == "posted")
        )
        gross, count = conn.execute(
            select(func.sum(t.project_totals.c.gross_fen), func.sum(t.project_totals.c.donations_count))
        ).one()
    expected_gross = sum(g.gross_fen for g in gifts)
    problems = []
    if total != setup_events + len(gifts):
        problems.append(f"{total} journal entries, expected {setup_events + len(gifts)}")
    if posted != len(gifts):
        problems.append(f"{posted} posted gifts, expected {len(gifts)}")
    if (int(gross), int(count)) != (expected_gross, len(gifts)):
        problems.append(f"totals say {count} gifts / {gross} fen, expected {len(gifts)} / {expected_gross}")
    if problems:
        raise RuntimeError(f"{run.backend}: " + "; ".join(problems))


def summarise_profile(backend: str, workdir: Path, out: Out) -> None:
    """Write where the main thread's time went next to the raw profile; print the stages."""
    raw = workdir / f"profile-{backend}.txt"
    if not raw.exists():
        out(f"  {backend}: py-spy wrote no profile (see {workdir / f'ledger-{backend}.log'})")
        return
    stacks = spy_profile.parse_raw(raw.read_text(encoding="utf-8").splitlines())
    (workdir / f"profile-{backend}-summary.txt").write_text(
        spy_profile.report(stacks) + "\n", encoding="utf-8"
    )
    out(f"  {backend} main thread by stage (py-spy, wall clock):")
    for line in spy_profile.table(spy_profile.main_thread_stages(stacks)):
        out(f"    {line}")


def machine_description() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Python {sys.version.split()[0]}"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    out = Out(args.json_only)
    workdir = VAR_DIR / "bench" / time.strftime("%Y%m%d-%H%M%S")
    workdir.mkdir(parents=True, exist_ok=True)
    codec = EventCodec()
    out(f"ledger ingest bench: {args.events} confirmed gifts over {args.projects} projects")
    out(f"machine: {machine_description()}; run directory {workdir}")
    out(f"load average before the run: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    now = ev.utc_now_ms()
    ids = workload.project_ids(args.projects)
    setup = workload.opened_projects(ids, now)
    gifts = list(workload.confirmed_gifts(args.events, ids, now))
    raw: Drain | None = None
    runs: list[BackendRun] = []
    with contextlib.ExitStack() as stack:
        stack.callback((workdir / "tree-head-ed25519.pem").unlink, missing_ok=True)
        bootstrap = stack.enter_context(kafka_broker(out))
        topics = stack.enter_context(topic_set(bootstrap))
        produce(bootstrap, topics, setup, codec)
        for backend in args.backends:
            url = stack.enter_context(database(backend, workdir))
            engine = make_engine(url, writer=False)
            stack.callback(engine.dispose)
            group = f"{topics.prefix}ledger-{backend}"
            run = BackendRun(backend, url, engine, ledger_env(url, bootstrap, topics, group, workdir))
            started = time.monotonic()
            run_setup(run, workdir, len(setup))
            out(f"{backend}: ledger applied {len(setup)} setup events in {time.monotonic() - started:.1f}s")
            runs.append(run)
        seconds = produce(bootstrap, topics, list(gifts), codec)
        out(
            f"produced {len(gifts)} gifts before any drain: {seconds:.1f}s "
            f"({len(gifts) / seconds:,.0f}/s, acks=all)"
        )
        if not args.skip_raw:
            raw = raw_ceiling(bootstrap, topics, len(gifts), codec)
            out(
                f"raw consume+decode, no database: {raw.per_s:,.0f} events/s "
                f"({raw.events} in {raw.seconds:.2f}s)"
            )
        outcomes = TopicEnd(bootstrap, topics.outcomes, INPUT_PARTITIONS)
        stack.callback(outcomes.close)
        for run in runs:
            run_drain(run, workdir, len(gifts), outcomes, args.profile)
            verify(run, gifts, len(setup))
            assert run.drain is not None
            rss = "n/a (cProfile)" if run.rss_mb is None else f"{run.rss_mb:.0f} MiB"
            out(
                f"{run.backend}: {run.drain.per_s:,.0f} events/s sustained "
                f"({run.drain.events} events in {run.drain.seconds:.2f}s, "
                f"{run.wall_s:.1f}s from process start), "
                f"peak RSS {rss}; every gift posted once, totals add up"
            )
            out(
                f"  {run.backend} events/s by quarter of the drain: "
                + " / ".join(f"{r:,.0f}" for r in run.quarters)
            )
            if args.profile == "py-spy":
                summarise_profile(run.backend, workdir, out)
            if run.ledger_cores is not None and run.machine_cores is not None:
                out(
                    f"  {run.backend} CPU during the drain: ledger + helpers {run.ledger_cores:.2f} cores "
                    f"({run.cpu_us_per_event:.0f} µs of CPU per event), "
                    f"whole machine {run.machine_cores:.2f} of {os.cpu_count()} cores"
                )
        core = ledger_core(args.journal_entries, workdir, out, bootstrap) if args.journal_entries else {}
        if args.takeovers:
            core.update(takeover.measure(bootstrap, workdir, args.takeovers, out))
    if args.profile:
        out(f"profiled with {args.profile} (slower than unprofiled): {workdir}/profile-*")
    figures = summary_figures(args, runs, raw)
    figures.update(core)
    print(summary_line(figures), flush=True)
    return 0


def ledger_core(
    entries: int, workdir: Path, out: Out, bootstrap: str
) -> dict[str, float | int | str | bool | None]:
    """Rebuild, verify and receipts on a journal of `entries` (issue targets: 60 s, 30 s, 5 ms),
    and the relay catching up with all of it."""
    path = workdir / "journal.db"
    out(f"ledger core: building a SQLite journal of {entries:,} entries with the real rules and store…")
    try:
        core = journal_bench.run(f"sqlite:///{path}", entries, bootstrap=bootstrap)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    out(
        f"  built in {core['build_journal_s']}s; rebuild {core['rebuild_s']}s, verify {core['verify_s']}s, "
        f"receipt p50 {core['receipt_p50_ms']} ms / p99 {core['receipt_p99_ms']} ms "
        f"(tree loaded in {core['receipt_tree_load_s']}s), "
        f"inclusion proof {core['inclusion_proof_mean_ms']} ms; the relay caught up with all of it in "
        f"{core['relay_catch_up_s']}s ({core['relay_catch_up_entries_per_s']:,.0f} entries/s, "
        f"{core['relay_catch_up_outputs_per_s']:,.0f} records/s)"
    )
    return {f"journal_{k}": v for k, v in core.items()}


def summary_figures(
    args: argparse.Namespace, runs: list[BackendRun], raw: Drain | None
) -> dict[str, float | int | str | bool | None]:
    by_backend = {r.backend: r for r in runs}
    figures: dict[str, float | int | str | bool | None] = {}
    for backend in BACKENDS:
        run = by_backend.get(backend)
        figures[f"{backend}_events_per_s"] = run.drain.per_s if run and run.drain else None
    figures["raw_consume_decode_per_s"] = raw.per_s if raw else None
    rss = [r.rss_mb for r in runs if r.rss_mb is not None]
    figures["ledger_peak_rss_mb"] = max(rss) if rss else None
    for backend in BACKENDS:
        run = by_backend.get(backend)
        figures[f"{backend}_peak_rss_mb"] = run.rss_mb if run else None
    for backend in BACKENDS:
        run = by_backend.get(backend)
        figures[f"{backend}_ledger_cpu_cores"] = run.ledger_cores if run else None
        figures[f"{backend}_ledger_cpu_us_per_event"] = run.cpu_us_per_event if run else None
        figures[f"{backend}_machine_cpu_cores"] = run.machine_cores if run else None
    figures["events"] = args.events
    figures["projects"] = args.projects
    figures["batch_max_records"] = Settings().batch_max_records
    if args.profile:
        figures["profiled_with"] = args.profile
    return figures


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
