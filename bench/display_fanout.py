"""Display benchmarks: fan-out to thousands of screens, and latency under a donation rate.

Both run the real gateway (``python -m services.display.main``) as its own process on
a real broker, and the screens as another process (``bench.loadgen``) on
the same machine. Times are wall-clock: every process reads the same clock.

* ``fanout_bench``: N concurrent streams on one gateway; totals updates one second
  apart (each is then its own message: no coalescing in the figure); for each update,
  the time from the broker's ack of the TotalsUpdated to its arrival at the last of
  the N screens; and the gateway's resident memory.
* ``latency_bench``: gifts at a steady rate (each a DonationFeedItem and a
  TotalsUpdated, as the ledger publishes them); for each gift and each screen, the
  time from the broker's ack of the gift's TotalsUpdated to the first message whose
  totals include it. That is the display's part of "API ack → screen"; the ledger's
  batch (≤ 50 ms) comes before it.

``python -m bench.display_fanout`` runs both and prints JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import httpx

from services.contracts.topics import Topics
from services.platform.kafka_admin import delete_topics, ensure_topics
from services.platform.kafka_launcher import LocalKafka
from tests.fixtures.fake_ledger import DEMO_PROJECTS, LedgerEcho

BENCH_VENUE = "bench-hall"
WARMUP_S = 2.0
# The same variable as `charity-ledger bench`: run against an existing broker.
BOOTSTRAP_ENV = "CHARITY_BENCH_KAFKA_BOOTSTRAP"
PROJECTS = list(DEMO_PROJECTS)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def broker(bootstrap: str | None = None) -> Iterator[str]:
    """The given broker (or the one named by CHARITY_BENCH_KAFKA_BOOTSTRAP), or a local one."""
    bootstrap = bootstrap or os.environ.get(BOOTSTRAP_ENV)
    if bootstrap:
        yield bootstrap
        return
    port, controller = _free_port(), _free_port()
    with tempfile.TemporaryDirectory(prefix="display-bench-kafka-") as data:
        kafka = LocalKafka(Path(data), port=port, controller_port=controller)
        kafka.start(timeout=120)
        try:
            yield kafka.bootstrap
        finally:
            kafka.stop()


@contextlib.contextmanager
def bench_topics(bootstrap: str) -> Iterator[Topics]:
    topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.")
    ensure_topics(bootstrap, topics.specs())
    try:
        yield topics
    finally:
        delete_topics(bootstrap, [spec.name for spec in topics.specs()])


class GatewayProcess:
    """``python -m services.display.main`` with one benchmark venue, and its memory figures."""

    def __init__(
        self,
        bootstrap: str,
        topics: Topics,
        workdir: Path,
        max_clients: int = 20_000,
        coalesce_ms: int = 250,
    ) -> None:
        venues = workdir / "venues.json"
        venues.write_text(
            json.dumps(
                {
                    "venues": [
                        {
                            "id": BENCH_VENUE,
                            "title": {"zh": "基准大厅", "en": "Bench hall"},
                            "projects": PROJECTS,
                            "theme": "hall",
                        }
                    ]
                },
                ensure_ascii=False,
            ),
            encoding="utf-8",
        )
        self.port = _free_port()
        env = {
            **os.environ,
            "CHARITY_KAFKA_BOOTSTRAP": bootstrap,
            "CHARITY_TOPIC_PREFIX": topics.prefix,
            "CHARITY_VENUES_FILE": str(venues),
            "CHARITY_DISPLAY_PORT": str(self.port),
            "CHARITY_DISPLAY_HOST": "127.0.0.1",
            "CHARITY_DISPLAY_MAX_CLIENTS": str(max_clients),
            "CHARITY_DISPLAY_COALESCE_MS": str(coalesce_ms),
        }
        self.log_path = workdir / "gateway.log"
        self._log: IO[bytes] = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.display.main"],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        raise TimeoutError("gateway not ready")

    def memory_kib(self) -> dict[str, int]:
        """VmRSS (now) and VmHWM (peak) of the gateway process."""
        figures: dict[str, int] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                figures[key] = int(value.split()[0])
        return figures

    def screens(self) -> int:
        return int(httpx.get(f"{self.url}/screen/{BENCH_VENUE}/status", timeout=5).json()["screens"])

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class LoadProcess:
    """``python -m bench.loadgen``: N streams in another process."""

    def __init__(self, gateway: GatewayProcess, clients: int, workdir: Path) -> None:
        self.out = workdir / f"load-{clients}-{uuid.uuid4().hex[:6]}.json"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.loadgen",
                "--port",
                str(gateway.port),
                "--path",
                f"/screen/{BENCH_VENUE}/events",
                "--clients",
                str(clients),
                "--out",
                str(self.out),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("READY"):
            self.proc.kill()
            raise RuntimeError(f"load process failed to connect its streams: {line!r}")
        self.connect_s = float(line.split()[2])

    def finish(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(120)
        result: dict[str, Any] = json.loads(self.out.read_text())
        self.out.unlink()
        return result

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class _PeakSampler:
    """Samples the gateway's memory while a run goes on (VmHWM alone includes start-up)."""

    def __init__(self, gateway: GatewayProcess) -> None:
        self.gateway = gateway
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with contextlib.suppress(OSError):
                self.peak = max(self.peak, self.gateway.memory_kib()["VmRSS"])

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _seed(echo: LedgerEcho) -> None:
    for index, project in enumerate(PROJECTS):
        echo.set_totals(project, 10_000_00 * (index + 1), 100 * (index + 1))
    echo.flush()


class AckClock:
    """When the broker acknowledged each send: stamped in the producer's callback, which runs
    as the ack arrives (a callback added to a future that is already done runs at once)."""

    def __init__(self) -> None:
        self.acks: dict[int, float] = {}
        self._lock = threading.Lock()
        self._pending = 0
        self._done = threading.Event()
        self._done.set()

    def watch(self, seq: int, future: Any) -> None:
        with self._lock:
            self._pending += 1
            self._done.clear()

        def acked(_: Any) -> None:
            self.acks[seq] = time.time()
            with self._lock:
                self._pending -= 1
                if self._pending == 0:
                    self._done.set()

        future.add_callback(acked)

    def wait(self, timeout: float = 30) -> dict[int, float]:
        self._done.wait(timeout)
        return self.acks


# --- fan-out -------------------------------------------------------------------------------


def fanout_bench(
    client_counts: tuple[int, ...] = (1000, 5000, 10000),
    updates: int = 20,
    interval_s: float = 1.0,
    bootstrap: str | None = None,
) -> dict[str, Any]:
    """p50/p99 from a totals update to the last of N screens, and the gateway's RSS."""
    results: dict[str, Any] = {"updates_per_run": updates, "interval_s": interval_s, "runs": []}
    with (
        broker(bootstrap) as kafka,
        bench_topics(kafka) as topics,
        tempfile.TemporaryDirectory(prefix="display-bench-") as tmp,
    ):
        echo = LedgerEcho(kafka, topics, producer_config={"linger_ms": 0})
        _seed(echo)
        gateway = GatewayProcess(kafka, topics, Path(tmp))
        try:
            results["gateway_rss_idle_mib"] = round(gateway.memory_kib()["VmRSS"] / 1024, 1)
            for clients in client_counts:
                results["runs"].append(_fanout_run(gateway, echo, clients, updates, interval_s, Path(tmp)))
        finally:
            gateway.stop()
            echo.close()
    return results


def _fanout_run(
    gateway: GatewayProcess, echo: LedgerEcho, clients: int, updates: int, interval_s: float, tmp: Path
) -> dict[str, Any]:
    load = LoadProcess(gateway, clients, tmp)
    try:
        time.sleep(1.0)
        sampler = _PeakSampler(gateway)
        connected = gateway.screens()
        clock = AckClock()
        first_seq = echo.seq + 1
        for _ in range(updates):
            started = time.monotonic()
            raised = echo.raised("elderly-meals") + 1_00
            clock.watch(echo.seq + 1, echo.set_totals("elderly-meals", raised, 1))
            echo.flush()
            time.sleep(max(0.0, interval_s - (time.monotonic() - started)))
        acks = clock.wait()
        time.sleep(2.0)
        rss_kib = gateway.memory_kib()["VmRSS"]
        peak_kib = sampler.stop()
        seen = load.finish()
    finally:
        load.kill()
    deadline = time.monotonic() + 30
    while gateway.screens() and time.monotonic() < deadline:  # let the gateway see them go
        time.sleep(0.2)

    last_client: list[float] = []
    every: list[float] = []
    delivered = 0
    for seq in range(first_seq, first_seq + updates):
        arrivals = [
            t
            for stream in seen["totals"]
            for (t, project, q) in stream
            if project == "elderly-meals" and q == seq
        ]
        delivered += len(arrivals)
        if arrivals and seq in acks:
            latencies = [t - acks[seq] for t in arrivals]
            every.extend(latencies)
            last_client.append(max(latencies))
    return {
        "clients": clients,
        "connected": connected,
        "connect_s": load.connect_s,
        "delivered_fraction": round(delivered / (clients * updates), 5),
        "last_client_ms": {
            "p50": _ms(statistics.median(last_client)),
            "p99": _ms(percentile(last_client, 99)),
            "max": _ms(max(last_client)),
        },
        "all_deliveries_ms": {"p50": _ms(statistics.median(every)), "p99": _ms(percentile(every, 99))},
        "gateway_rss_mib": round(rss_kib / 1024, 1),
        "gateway_rss_peak_mib": round(peak_kib / 1024, 1),
    }


# --- latency under load -------------------------------------------------------------------


def latency_bench(
    rates: tuple[int, ...] = (100, 1000),
    duration_s: float = 10.0,
    clients: int = 10,
    bootstrap: str | None = None,
    coalesce_ms: int = 250,
) -> dict[str, Any]:
    """p50/p99 from the ack of a gift's totals to the first SSE message that includes it.

    With updates coalesced every ``coalesce_ms`` (250: 4 a second, as the display once did), a gift
    waits for the next update a uniformly spread 0..250 ms: 247.5 ms of any p99 is that
    wait, whatever the rest of the pipeline does.
    """
    results: dict[str, Any] = {
        "duration_s": duration_s,
        "warmup_s": WARMUP_S,
        "clients": clients,
        "coalesce_ms": coalesce_ms,
        "runs": [],
    }
    with broker(bootstrap) as kafka, tempfile.TemporaryDirectory(prefix="display-bench-") as tmp:
        for rate in rates:
            with bench_topics(kafka) as topics:
                echo = LedgerEcho(kafka, topics)
                _seed(echo)
                gateway = GatewayProcess(kafka, topics, Path(tmp), coalesce_ms=coalesce_ms)
                try:
                    results["runs"].append(_latency_run(gateway, echo, rate, duration_s, clients, Path(tmp)))
                finally:
                    gateway.stop()
                    echo.close()
    return results


def _latency_run(
    gateway: GatewayProcess, echo: LedgerEcho, rate: int, duration_s: float, clients: int, tmp: Path
) -> dict[str, Any]:
    load = LoadProcess(gateway, clients, tmp)
    try:
        time.sleep(0.5)
        gifts: dict[int, str] = {}
        clock = AckClock()
        count = int(rate * duration_s)
        warmup = int(rate * WARMUP_S)  # sent at the same rate, not measured: JIT, caches, fetch sessions
        started = measured_from = time.monotonic()
        for i in range(warmup + count):
            wait = started + i / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if i == warmup:
                measured_from = time.monotonic()
            project = PROJECTS[i % len(PROJECTS)]
            _, totals_future = echo.gift(project, 1_00 + i % 500, shown_name="王**", venue_id=BENCH_VENUE)
            if i >= warmup:
                gifts[echo.seq] = project
                clock.watch(echo.seq, totals_future)
        achieved = count / (time.monotonic() - measured_from)
        echo.flush()
        acks = clock.wait()
        time.sleep(1.5)
        seen = load.finish()
    finally:
        load.kill()

    totals_latency: list[float] = []
    missing = 0
    for stream in seen["totals"]:
        by_project: dict[str, tuple[list[int], list[float]]] = {}
        for t, project, q in stream:
            seqs, times = by_project.setdefault(project, ([], []))
            seqs.append(q)
            times.append(t)
        for seq, project in gifts.items():
            seqs, times = by_project.get(project, ([], []))
            index = bisect_left(seqs, seq)  # the first message whose total includes the gift
            if index == len(seqs) or seq not in acks:
                missing += 1
                continue
            totals_latency.append(times[index] - acks[seq])
    feed_latency = [t - acks[seq] for stream in seen["feed"] for t, seq in stream if seq in acks]
    feed_seen = len(feed_latency)
    return {
        "rate_per_s": rate,
        "achieved_rate_per_s": round(achieved, 1),
        "gifts": count,
        "screen_total_ms": {
            "p50": _ms(statistics.median(totals_latency)),
            "p99": _ms(percentile(totals_latency, 99)),
            "max": _ms(max(totals_latency)),
        },
        "feed_item_ms": {
            "p50": _ms(statistics.median(feed_latency)),
            "p99": _ms(percentile(feed_latency, 99)),
        },
        # Above ~200 gifts/s a message carries only the newest 50 (a screen shows a dozen).
        "feed_items_delivered_fraction": round(feed_seen / (count * clients), 4),
        "never_seen": missing,
    }


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="display benchmarks")
    parser.add_argument("--bootstrap", default=None, help="an existing broker; default: start one")
    parser.add_argument("--which", choices=["fanout", "latency", "both"], default="both")
    parser.add_argument("--clients", default="1000,5000,10000")
    parser.add_argument("--coalesce-ms", type=int, default=250, help="latency runs only")
    args = parser.parse_args()
    out: dict[str, Any] = {}
    if args.which in ("latency", "both"):
        out["latency"] = latency_bench(bootstrap=args.bootstrap, coalesce_ms=args.coalesce_ms)
    if args.which in ("fanout", "both"):
        counts = tuple(int(c) for c in args.clients.split(","))
        out["fanout"] = fanout_bench(counts, bootstrap=args.bootstrap)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
