"""End-to-end latency: from the API's 202 for a confirmed donation to the venue screen.

Nothing is stood in for. Each part runs as its own process on this machine:

* the broker (``LocalKafka``, or the one named by CHARITY_BENCH_KAFKA_BOOTSTRAP);
* the ledger, ``python -m services.cli ledger``, on a fresh SQLite database;
* the API, ``python -m services.cli api`` (the production entry point, access log and all);
* one display gateway (``python -m services.display.main``, see ``bench.GatewayProcess``);
* N screens, ``bench.loadgen`` (raw asyncio SSE streams) in a load process;
* and this process, which posts confirmed donations at a steady rate over a few keep-alive
  connections and stamps each 202 as it arrives.

How a gift is found on the screens: the API answers 202 with the DonationConfirmed's
event id; the ledger's DonationFeedItem carries that id as ``source_event_id``, with the
gift's journal ``seq``; a project's totals carry ``as_of_seq``, the last entry they count.
So, for each gift and each screen (wall-clock times, the same clock in every process):

* ``screen_ms``: from the 202 to the first message whose totals for the gift's project
  have ``as_of_seq >= seq``: the message that shows the gift (the gateway sends a gift in
  the same message as the total that counts it). Every gift is matched this way, even
  when its line is left out of that message's feed (above ~200 gifts/s a message lists
  only the newest 50);
* ``feed_ms``: from the 202 to the message whose feed lists the gift, for the gifts listed;
* ``ledger_publish_ms`` / ``publish_to_screen_ms``: ``screen_ms`` split at the CreateTime of
  the gift's feed record, i.e. when the ledger published it after committing its batch.

Alongside: the rate achieved (a single API process may not keep up: posts then wait
here for a free connection, and the figures say how many were sent), the API's answer
time, and the CPU each process used while posting, with what the rest of the machine
used meanwhile.

The gateway coalesces a venue's changes to at most one message per ``coalesce_ms`` (200, the
default since session 6: 5 a second); a gift waits for the next message up to that long, whatever
the rest of the chain does. Run with ``coalesce_ms=(250, 200)`` to see that share.

``python -m bench.end_to_end`` prints the figures as JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import IO, Any

import httpx
from kafka import KafkaConsumer, TopicPartition

from bench.display_fanout import (
    BENCH_VENUE,
    BOOTSTRAP_ENV,
    PROJECTS,
    GatewayProcess,
    LoadProcess,
    _free_port,
    bench_topics,
    percentile,
)
from bench.measure import machine_busy_seconds, process_cpu_seconds
from bench.procfs import children_of
from services.contracts.codec import EventCodec
from services.contracts.events import DonationFeedItem
from services.contracts.topics import Topics
from services.platform.kafka_launcher import LocalKafka
from tests.fixtures.fake_ledger import DEMO_PROJECTS

STAFF_TOKEN = "e2e-bench-staff-token"
# Posts answered in the first seconds are not measured: JIT, caches, fetch sessions, pools.
WARMUP_S = 2.0
# Before the first rate, the whole stack takes gifts for a while unmeasured: a fresh broker
# spends its first tens of seconds compiling (its JIT took 0.2-0.7 CPU during the first
# measured runs), and a venue screen is judged on its normal day, not its first minute.
STACK_WARMUP_RATE = 300
STACK_WARMUP_S = 15.0
# Posts still waiting for a connection this long after the schedule ended are not sent:
# when the API cannot keep up, the run stays bounded and the achieved rate says so.
LATE_S = 1.0
CONFIRMED_PATH = "/api/internal/donations/confirmed"


def summary_ms(seconds: list[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50": None, "p99": None, "max": None}
    return {
        "p50": round(statistics.median(seconds) * 1000, 1),
        "p99": round(percentile(seconds, 99) * 1000, 1),
        "max": round(max(seconds) * 1000, 1),
    }


TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(*pids: int) -> float:
    """User + system CPU time of processes so far."""
    return sum(process_cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), TICKS_PER_S) for pid in pids)


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine (all cores) so far."""
    return machine_busy_seconds(Path("/proc/stat").read_text(), TICKS_PER_S)[0]


@contextlib.contextmanager
def broker(bootstrap: str | None = None) -> Iterator[tuple[str, int | None]]:
    """The given broker (or CHARITY_BENCH_KAFKA_BOOTSTRAP's), or a local one, with the pid
    of the local one: its CPU is part of the bill."""
    bootstrap = bootstrap or os.environ.get(BOOTSTRAP_ENV)
    if bootstrap:
        yield bootstrap, None
        return
    port, controller = _free_port(), _free_port()
    with tempfile.TemporaryDirectory(prefix="display-e2e-kafka-") as data:
        kafka = LocalKafka(Path(data), port=port, controller_port=controller)
        kafka.start(timeout=120)
        try:
            yield kafka.bootstrap, int(kafka.pid_path.read_text())
        finally:
            kafka.stop()


class ServiceProcess:
    """A ``python -m services.cli <command>`` child with its log in the work directory."""

    def __init__(
        self, command: str, env: dict[str, str], workdir: Path, ready_url: str, name: str | None = None
    ) -> None:
        self.name = name or command
        self.log_path = workdir / f"{self.name}.log"
        self._log: IO[bytes] = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", command],
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(ready_url)

    def _wait_ready(self, url: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} not ready at {url}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@dataclass
class Stack:
    """The ledger and the API on one broker and one topic set (and more API processes, if asked)."""

    bootstrap: str
    topics: Topics
    ledger: ServiceProcess
    api: ServiceProcess
    api_url: str
    more_apis: list[tuple[ServiceProcess, str]] = field(default_factory=list)

    @property
    def apis(self) -> list[tuple[ServiceProcess, str]]:
        """Every API process with its base URL, the first one first."""
        return [(self.api, self.api_url), *self.more_apis]


@contextlib.contextmanager
def running_stack(bootstrap: str, topics: Topics, workdir: Path, apis: int = 1) -> Iterator[Stack]:
    """The ledger and ``apis`` API processes (each on its own port, the same settings)."""
    api_ports, ledger_port = [_free_port() for _ in range(apis)], _free_port()
    shared = {
        "CHARITY_KAFKA_BOOTSTRAP": bootstrap,
        "CHARITY_TOPIC_PREFIX": topics.prefix,
        "CHARITY_DATABASE_URL": f"sqlite:///{workdir / 'ledger.db'}",
        "CHARITY_STAFF_TOKEN": STAFF_TOKEN,
        # Gifts go through the stand-in: this measures the ledger's path, not a provider's.
        "CHARITY_INTERNAL_DONATIONS_ENABLED": "true",
        "CHARITY_PAYMENT_PROVIDER": "none",
        "CHARITY_VAR_DIR": str(workdir),
    }
    ledger_env = {
        **shared,
        "CHARITY_LEDGER_GROUP": f"e2e-bench-{uuid.uuid4().hex[:8]}",
        "CHARITY_LEDGER_HTTP_PORT": str(ledger_port),
        "CHARITY_SIGNING_KEY": str(workdir / "tree-head-ed25519.pem"),
    }
    with contextlib.ExitStack() as stack:
        # The ledger first: it creates the database the API reads.
        ledger = ServiceProcess("ledger", ledger_env, workdir, f"http://127.0.0.1:{ledger_port}/readyz")
        stack.callback(ledger.stop)
        started: list[tuple[ServiceProcess, str]] = []
        for n, port in enumerate(api_ports):
            api_env = {**shared, "CHARITY_API_HOST": "127.0.0.1", "CHARITY_API_PORT": str(port)}
            url = f"http://127.0.0.1:{port}"
            api = ServiceProcess("api", api_env, workdir, f"{url}/readyz", name=f"api-{n + 1}" if n else None)
            stack.callback(api.stop)
            started.append((api, url))
        (first, first_url), *more = started
        yield Stack(bootstrap, topics, ledger, first, first_url, more)


def open_projects(api_url: str, projects: list[str], timeout: float = 60) -> None:
    """Register, approve and open the venue's projects through the API, as staff would."""
    staff = {"Authorization": f"Bearer {STAFF_TOKEN}"}
    today = date.today()
    with httpx.Client(base_url=api_url, headers=staff, timeout=10) as client:

        def wait_status(status: str) -> None:
            deadline = time.monotonic() + timeout
            for project in projects:
                while True:
                    answer = client.get(f"/api/projects/{project}/totals")
                    if answer.status_code == 200 and answer.json()["status"] == status:
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{project} not {status}: {answer.text}")
                    time.sleep(0.1)

        for project in projects:
            demo = DEMO_PROJECTS[project]
            body = {
                "project_id": project,
                "name": demo.name,
                "name_en": demo.name_en,
                "organisation": "园区慈善总会",
                "certificate_no": "CSZ-BENCH",
                "purpose": demo.name,
                "goal_fen": demo.goal_fen,
                "starts_on": (today - timedelta(days=1)).isoformat(),
                "ends_on": (today + timedelta(days=180)).isoformat(),
                "beneficiaries": "受助人",
                "use_of_funds": "项目支出",
                "leftover_handling": "转入同类项目",
            }
            client.post("/api/projects", json=body).raise_for_status()
        wait_status("registered")
        for project in projects:
            client.post(f"/api/projects/{project}/approve").raise_for_status()
        wait_status("approved")
        for project in projects:
            client.post(f"/api/projects/{project}/open-fundraising").raise_for_status()
        wait_status("fundraising")


# --- posting at a rate --------------------------------------------------------------------------


@dataclass
class Posted:
    index: int
    project: str
    scheduled_at: float  # wall clock: when the post was due (open loop)
    sent_at: float  # when a connection was free to send it
    answered_at: float  # when its answer had been read
    status: int
    event_id: str | None


class _Connection:
    """One keep-alive HTTP/1.1 connection to the API.

    Raw asyncio streams rather than an HTTP client library: this process shares two
    cores with everything it measures, so the poster should cost as little as it can.
    The API answers JSON with a Content-Length, which is all this needs to read.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            return await self._post(path, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            # The server may close a keep-alive connection that sat idle; a confirmed
            # donation is idempotent (its event id derives from the donation id), so the
            # post is simply sent again on a new connection.
            self.close()
            return await self._post(path, body)

    async def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {STAFF_TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        response_head = await self.reader.readuntil(b"\r\n\r\n")
        lines = response_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def post_at_rate(
    api_url: str | Sequence[str], rate: float, count: int, connections: int
) -> tuple[float, list[Posted]]:
    """Post up to ``count`` confirmed donations, the i-th due at start + i/rate (open loop),
    over ``connections`` keep-alive connections. A post waits for a free connection when
    the API falls behind (``sent_at - scheduled_at`` shows that backlog), and is dropped if
    it is still waiting ``LATE_S`` after the schedule's end. Returns the start time and the
    posts sent.

    Given several API URLs, the connections are spread over them in turn (connection i to
    URL i mod n), as a round-robin balancer in front of the processes would spread them."""
    urls = [api_url] if isinstance(api_url, str) else list(api_url)
    addresses = [(u.host, u.port or 80) for u in map(httpx.URL, urls)]
    run = uuid.uuid4().hex[:8]
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    posted: list[Posted] = []

    started = time.time()
    give_up = started + count / rate + LATE_S

    async def worker(host: str, port: int) -> None:
        connection = _Connection(host, port)
        try:
            while (job := await queue.get()) is not None:
                index, scheduled = job
                sent = time.time()
                if sent > give_up:
                    continue
                project = PROJECTS[index % len(PROJECTS)]
                body = {
                    "project_id": project,
                    "donation_id": f"e2e-{run}-{index}",
                    "provider_charge_id": f"c-{run}-{index}",
                    "gross_fen": 1_00 + index % 500,
                    "channel": "qr",
                    "venue_id": BENCH_VENUE,
                    "anonymity": "masked",
                    "display_name": "王小明",
                }
                status, answer = await connection.post(CONFIRMED_PATH, json.dumps(body).encode())
                answered = time.time()
                event_id = json.loads(answer)["event_id"] if status == 202 else None
                posted.append(Posted(index, project, scheduled, sent, answered, status, event_id))
        finally:
            connection.close()

    workers = [asyncio.create_task(worker(*addresses[i % len(addresses)])) for i in range(connections)]
    for index in range(count):
        due = started + index / rate
        delay = due - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait((index, due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return started, sorted(posted, key=lambda p: p.index)


# --- finding the gifts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    project: str
    seq: int  # the gift's journal entry
    at: float  # the record's CreateTime: when the ledger sent it, after its batch committed


class FeedIndex:
    """The ledger's feed topic, read as it grows: for each DonationConfirmed's event id,
    the gift's project, journal seq and when the ledger published it."""

    def __init__(self, bootstrap: str, topics: Topics) -> None:
        self.codec = EventCodec()
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        # From the catalogue, not from metadata: a new consumer may not have loaded it yet.
        partitions = next(spec.partitions for spec in topics.specs() if spec.name == topics.feed)
        assigned = [TopicPartition(topics.feed, p) for p in range(partitions)]
        self.consumer.assign(assigned)
        self.consumer.seek_to_beginning(*assigned)
        self.seq_of: dict[str, Published] = {}

    def collect(self, wanted: set[str], timeout: float) -> set[str]:
        """Read until every wanted id is found or the time is up; the ids still missing."""
        deadline = time.monotonic() + timeout
        while (missing := wanted - self.seq_of.keys()) and time.monotonic() < deadline:
            for records in self.consumer.poll(timeout_ms=200, max_records=5000).values():
                for record in records:
                    item = self.codec.decode(record.value)
                    if isinstance(item, DonationFeedItem):
                        published = Published(item.project_id, item.seq, record.timestamp / 1000)
                        self.seq_of[item.source_event_id] = published
        return missing

    def close(self) -> None:
        self.consumer.close()


def wait_screens_current(gateway: GatewayProcess, api_url: str, timeout: float = 30) -> bool:
    """True once the venue's last sent message has the ledger's totals (as the API reads
    them from the ledger database): every gift has then been sent to the screens."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=5) as client:
        while time.monotonic() < deadline:
            expected = sum(
                int(client.get(f"{api_url}/api/projects/{p}/totals").json()["raised_fen"]) for p in PROJECTS
            )
            shown = client.get(f"{gateway.url}/screen/{BENCH_VENUE}/status").json()["venue_total_fen"]
            if shown == expected:
                return True
            time.sleep(0.1)
    return False


# --- one run ---------------------------------------------------------------------------------------


def e2e_latency_bench(
    rates: tuple[int, ...] = (100, 1000),
    seconds: float = 10.0,
    clients: int = 10,
    connections: int = 16,
    coalesce_ms: tuple[int, ...] = (250, 200),
    bootstrap: str | None = None,
) -> dict[str, Any]:
    """p50/p99/max from the API's 202 to the screens, per coalescing interval and rate."""
    results: dict[str, Any] = {
        "seconds": seconds,
        "warmup_s": WARMUP_S,
        "clients": clients,
        "connections": connections,
        "cpus": os.cpu_count(),
        "stack_warmup": {"rate_per_s": STACK_WARMUP_RATE, "seconds": STACK_WARMUP_S},
        "runs": [],
    }
    with (
        broker(bootstrap) as (kafka, broker_pid),
        bench_topics(kafka) as topics,
        tempfile.TemporaryDirectory(prefix="display-e2e-bench-") as tmp,
        running_stack(kafka, topics, Path(tmp)) as stack,
    ):
        open_projects(stack.api_url, PROJECTS)
        warmup = int(STACK_WARMUP_RATE * STACK_WARMUP_S)
        asyncio.run(post_at_rate(stack.api_url, STACK_WARMUP_RATE, warmup, connections))
        feed = FeedIndex(kafka, topics)
        try:
            for interval in coalesce_ms:
                gateway = GatewayProcess(kafka, topics, Path(tmp), coalesce_ms=interval)
                try:
                    for rate in rates:
                        run = _run(
                            stack, gateway, feed, broker_pid, rate, seconds, clients, connections, Path(tmp)
                        )
                        results["runs"].append({"coalesce_ms": interval, **run})
                finally:
                    gateway.stop()
        finally:
            feed.close()
    return results


def _run(
    stack: Stack,
    gateway: GatewayProcess,
    feed: FeedIndex,
    broker_pid: int | None,
    rate: int,
    seconds: float,
    clients: int,
    connections: int,
    tmp: Path,
) -> dict[str, Any]:
    load = LoadProcess(gateway, clients, tmp)
    try:
        time.sleep(0.5)
        count = int(rate * (WARMUP_S + seconds))
        pids = {
            # the ledger's children: its intake, its output publisher, multiprocessing's resource tracker
            "ledger": [stack.ledger.proc.pid, *children_of(stack.ledger.proc.pid)],
            "api": [stack.api.proc.pid],
            "gateway": [gateway.proc.pid],
            "screens": [load.proc.pid],
            "poster": [os.getpid()],
        }
        if broker_pid is not None:
            pids["broker"] = [broker_pid]
        cpu_before = {name: cpu_seconds(*group) for name, group in pids.items()}
        busy_before, posting_from = machine_busy(), time.monotonic()
        started, posted = asyncio.run(post_at_rate(stack.api_url, rate, count, connections))
        busy, elapsed = machine_busy() - busy_before, time.monotonic() - posting_from
        cpu = {name: cpu_seconds(*group) - cpu_before[name] for name, group in pids.items()}
        # By the time of the answer, not by index: when the API falls behind, the posts due
        # in the warm-up are answered well after it.
        measured = [p for p in posted if p.answered_at >= started + WARMUP_S]
        if not measured:
            raise RuntimeError(f"no post answered in time at {rate}/s; see {stack.api.log_path}")
        accepted = [p for p in measured if p.status == 202 and p.event_id is not None]
        unpublished = feed.collect({p.event_id for p in accepted if p.event_id}, timeout=60)
        current = wait_screens_current(gateway, stack.api_url)
        time.sleep(0.5)  # sent by the gateway is not yet read by the load process
        seen = load.finish()
    finally:
        load.kill()

    window = max(p.answered_at for p in measured) - (started + WARMUP_S)
    totals = [_by_project(stream) for stream in seen["totals"]]
    lines = [{seq: t for t, seq in stream} for stream in seen["feed"]]
    screen: list[float] = []
    last_screen: list[float] = []
    listed: list[float] = []
    ledger_part: list[float] = []
    display_part: list[float] = []
    matched = 0
    for gift in accepted:
        if gift.event_id is None or gift.event_id in unpublished:
            continue
        published = feed.seq_of[gift.event_id]
        project, seq = published.project, published.seq
        arrivals = [_first_showing(stream, project, seq) for stream in totals]
        shown = [t - gift.answered_at for t in arrivals if t is not None]
        screen.extend(shown)
        ledger_part.append(published.at - gift.answered_at)
        display_part.extend(t - published.at for t in arrivals if t is not None)
        if len(shown) == len(arrivals):
            matched += 1
            last_screen.append(max(shown))
        listed.extend(stream[seq] - gift.answered_at for stream in lines if seq in stream)
    return {
        "rate_per_s": rate,
        "scheduled": int(rate * seconds),
        "posted": len(measured),
        "accepted_202": len(accepted),
        "achieved_rate_per_s": round(len(measured) / window, 1),
        # The API's answer time as a client sees it, and how far posting fell behind schedule.
        "api_202_ms": summary_ms([p.answered_at - p.sent_at for p in accepted]),
        "behind_schedule_ms": summary_ms([p.sent_at - p.scheduled_at for p in measured]),
        "screen_ms": summary_ms(screen),
        "last_screen_ms": summary_ms(last_screen),
        "feed_ms": summary_ms(listed),
        # screen_ms split at the feed record's CreateTime (millisecond resolution): the API's
        # 202 to the ledger's publish (poll, batch, commit), and from there to the screens.
        "ledger_publish_ms": summary_ms(ledger_part),
        "publish_to_screen_ms": summary_ms(display_part),
        "gifts_matched_on_every_screen": matched,
        "feed_lines_listed_fraction": round(len(listed) / max(1, len(accepted) * clients), 4),
        "never_published_by_ledger": len(unpublished),
        "screens_current_at_end": current,
        # CPU seconds per second of posting (out of os.cpu_count()); "others" is whatever
        # else ran on the machine meanwhile (another job's load skews every figure).
        "cpu_per_s": {name: round(used / elapsed, 2) for name, used in cpu.items()},
        "machine_cpu_busy_per_s": round(busy / elapsed, 2),
        "others_cpu_per_s": round((busy - sum(cpu.values())) / elapsed, 2),
    }


def _by_project(totals: list[list[Any]]) -> dict[str, tuple[list[int], list[float]]]:
    """One screen's totals arrivals per project: as_of_seqs (increasing) and their times."""
    out: dict[str, tuple[list[int], list[float]]] = {}
    for t, project, seq in totals:
        seqs, times = out.setdefault(project, ([], []))
        seqs.append(seq)
        times.append(t)
    return out


def _first_showing(stream: dict[str, tuple[list[int], list[float]]], project: str, seq: int) -> float | None:
    """When the first message whose totals of ``project`` count entry ``seq`` arrived."""
    seqs, times = stream.get(project, ([], []))
    index = bisect_left(seqs, seq)
    return times[index] if index < len(seqs) else None


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="end-to-end latency: API 202 → venue screen")
    parser.add_argument("--bootstrap", default=None, help="an existing broker; default: start one")
    parser.add_argument("--rates", default="100,1000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--coalesce-ms", default="250,200")
    args = parser.parse_args()
    out = e2e_latency_bench(
        rates=tuple(int(r) for r in args.rates.split(",")),
        seconds=args.seconds,
        clients=args.clients,
        connections=args.connections,
        coalesce_ms=tuple(int(c) for c in args.coalesce_ms.split(",")),
        bootstrap=args.bootstrap,
    )
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
