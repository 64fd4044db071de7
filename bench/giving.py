"""Giving under load: WeChat Pay notifications into the journal, notifications a second, the donate page.

    .venv/bin/python -m bench.giving                  # prints one JSON report
    .venv/bin/python -m bench.giving --rates 200,25   # two steady runs

Nothing of the charity's side is stood in for. A broker (``LocalKafka``, or the one named
by CHARITY_BENCH_KAFKA_BOOTSTRAP) and ``python -m services.cli ledger|sandbox|api`` as
processes on one fresh SQLite database (the ledger's and the donor store's), the API
with its WeChat Pay v3 provider pointed at the sandbox, everything on loopback. This
process plays the donors and the payers over raw keep-alive HTTP/1.1 on asyncio, so
that it takes as little as it can of the two cores it shares with what it measures.

Who sends the payment notifications (``--notifier``):
* ``bench`` (the default): this process, as the provider's servers would, each one made
  beforehand exactly as the sandbox makes it (bench/giving_notifier.py: the sandbox's
  order book, notification body and platform key); the run only sends them. The
  provider's RSA signing and HTTP delivery are Tencent's CPU in production, not the
  charity's, and on this machine's two cores they took as much CPU as the API.
* ``sandbox``: orders are paid on the sandbox, which signs and delivers each
  notification (and retries it), as in the integration tests. Runs 2 and 3 below then
  pay on the sandbox instead of sending.
The rate limits per client and per project are raised (every donor here is 127.0.0.1);
every other setting is the default.

1. **Pledges**: ``POST /api/donations`` for the orders of run 3, beforehand, as fast as
   the API answers over ``PLEDGE_CONNECTIONS`` connections (donors waiting on the pay
   page); the ledger journals each DonationPledged, and the runs start once it has.
2. **Notification → journal**, at each of ``--rates`` (200 a second by default) for
   ``--seconds`` after ``WARMUP_S``, open loop.
   With ``--notifier bench`` the run's orders are pledged (and journaled) first, their
   notifications signed, and the run sends them to ``/api/payments/wechatpay/notify``
   at that rate over ``NOTIFY_CONNECTIONS``; a gift's clock starts when its
   notification leaves.
   With ``--notifier sandbox`` donors pledge in flight, a second's worth ahead of the
   payers (or, with ``--pledged-before``, before the run), and the orders are paid on
   the sandbox (``POST /sandbox/orders/{out_trade_no}/pay``) at that rate. The sandbox
   starts the notification's delivery before it answers the pay, so a gift's clock
   starts when this process has the pay's answer.
   Either way it stops at
   * ``to_recorded_at_ms``: the journal row's ``recorded_at``, the ledger's clock when
     it began the batch that holds the gift (millisecond resolution, before that batch
     commits);
   * ``to_seen_ms``: when a thread of this process, reading the journal every
     ``POLL_S`` (10 ms), first saw the committed row (so up to one poll late).
   The first ``WARMUP_S`` seconds are not counted. One clock: every process runs on
   this machine. ``journaled_per_s`` is how fast the counted gifts entered the journal:
   below the rate, the system did not keep up. If it falls behind by more than a
   second's worth of gifts (at least ``MIN_BEHIND``), sending stops there (``kept_up:
   false``; the figures are then of every gift sent until it stopped, warm-up
   included): more would only queue (in the sandbox, whose deliveries then time out
   and are retried, and the run would measure that). A payment that waits for its
   pledge falls behind the schedule (``behind_schedule_ms``); what is not paid within
   ``LATE_S`` of the schedule's end is not paid. The next run waits until the sandbox
   has no delivery of this run left to retry.
3. **Notifications a second, one API process**: about ``FLOOD_BACKLOG`` notifications
   always waiting for the API. With ``--notifier bench``: every order's notification
   signed first, then sent back to back over ``FLOOD_BACKLOG`` connections; the rate
   runs from the first sent to the last answered 204. With ``--notifier sandbox``:
   orders are paid on the sandbox to keep that many waiting, counted by the API's own
   ``api_payment_notifications_total`` on ``/metrics``, read every ``SAMPLE_S``;
   ``confirmed_2xx_per_s`` runs from the first sample that moved to the one that
   counted the last order, with the other outcomes meanwhile (a 204 to a delivery
   sent again because its first attempt went unanswered for 5 s is ``repeated``) and
   the sandbox's delivery attempts beside it.
4. **Donate page**: ``GET /donate?project=…`` back to back over ``PAGE_CONNECTIONS``
   keep-alive connections (closed loop) for ``--page-seconds``, after one unmeasured second.

With each run: the load average before it, and the CPU each process and the whole
machine used during it (cores, out of ``os.cpu_count()``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select

from bench.display_fanout import PROJECTS, bench_topics, percentile
from bench.end_to_end import (
    STAFF_TOKEN,
    ServiceProcess,
    broker,
    cpu_seconds,
    machine_busy,
    open_projects,
)
from bench.giving_notifier import SignedNotification, notify, signed_notifications
from bench.ingest import BACKENDS, postgres_base_url
from bench.keepalive import KeepAlive, Pool
from bench.measure import Sample, sustained_drain
from bench.procfs import children_of
from services.contracts.events import derived_id
from services.contracts.topics import Topics
from services.donors.domain.pledges import out_trade_no_for
from services.ledger.adapters.tables import journal
from services.payments.wechatpay_keys import ensure_local_keys
from services.platform.free_ports import free_ports
from services.platform.scratch_postgres import scratch_database
from services.platform.settings import Settings

WARMUP_S = 2.0
POLL_S = 0.010
SAMPLE_S = 0.1
# Enough to keep the API busy (its database calls run on a handful of threads), few enough that
# none waits near the sandbox's 5 s attempt timeout, after which it would be sent again.
FLOOD_BACKLOG = 50
FLOOD_LIMIT_S = 180
# A steady run stops paying when more than max(this, one second's worth) are paid but not journaled.
MIN_BEHIND = 100
# Orders still waiting to be paid this long after a steady run's schedule ended are not paid.
LATE_S = 1.0
# How long to wait for the last gifts of a steady run to reach the journal.
JOURNAL_WAIT_S = 60
PLEDGE_CONNECTIONS = 8
PAY_CONNECTIONS = 8
PAGE_CONNECTIONS = 8
# The provider's notifications in flight at once when this process sends them (a provider
# sends each on a connection of its own; more than the rate's few in flight never wait).
NOTIFY_CONNECTIONS = 32
# Every donor of the benchmark is 127.0.0.1, and thousands of pledges a minute go to a few projects.
NO_LIMIT = "1000000"
# The outcomes the API answers 2xx (services/api/giving.py): a confirmation, a repeat, an unpaid order.
ANSWERED_2XX = ("confirmed", "repeated", "not_paid")
NOTIFY_COUNTER = "api_payment_notifications_total"
JSON_BODY = "Content-Type: application/json\r\n"


def log(message: str) -> None:
    """Progress goes to stderr: stdout is the JSON report (bench.suite reads it)."""
    print(f"[giving {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def ms_summary(seconds: Sequence[float]) -> dict[str, float | None]:
    if not seconds:
        return {"p50": None, "p99": None, "max": None}
    values = list(seconds)
    return {
        "p50": round(percentile(values, 50) * 1000, 1),
        "p99": round(percentile(values, 99) * 1000, 1),
        "max": round(max(values) * 1000, 1),
    }


def notification_outcomes(metrics_text: str) -> dict[str, int]:
    """The API's payment notifications so far by outcome, from its Prometheus text."""
    outcomes: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == NOTIFY_COUNTER:
                outcomes[sample.labels["outcome"]] = int(sample.value)
    return outcomes


def answered_2xx(outcomes: dict[str, int]) -> int:
    return sum(outcomes.get(outcome, 0) for outcome in ANSWERED_2XX)


# --- the system --------------------------------------------------------------------------------


@dataclass
class GivingStack:
    api_url: str
    sandbox_url: str
    database_url: str
    processes: dict[str, ServiceProcess]
    keys: Settings  # where the sandbox's and the API's WeChat Pay keys are
    api_urls: list[str]  # every API process; api_url is the first

    def pids(self, broker_pid: int | None) -> dict[str, list[int]]:
        ledger = self.processes["ledger"].proc.pid
        pids = {
            # the ledger's children: its intake, its output publisher, multiprocessing's resource tracker
            "ledger": [ledger, *children_of(ledger)],
            "api": [p.proc.pid for name, p in self.processes.items() if name.startswith("api")],
            "sandbox": [self.processes["sandbox"].proc.pid],
            "bench": [os.getpid()],
        }
        if broker_pid is not None:
            pids["broker"] = [broker_pid]
        return pids


@contextlib.contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    """The URL of a fresh database: a SQLite file (the default), or a scratch PostgreSQL
    database on CHARITY_BENCH_POSTGRES_URL or the local server, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'ledger.db'}"
    else:
        with scratch_database(postgres_base_url(), "giving") as url:
            yield url


@contextlib.contextmanager
def giving_stack(
    bootstrap: str, topics: Topics, workdir: Path, database_url: str, apis: int = 1
) -> Iterator[GivingStack]:
    """Ledger, sandbox and ``apis`` API processes (each on its own port, the same settings),
    on one database (the ledger's and the donor store's) and the sandbox's keys."""
    sandbox_port, ledger_port, api_port, *more_api_ports = free_ports(2 + apis)
    api_url, sandbox_url = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{sandbox_port}"
    keys = workdir / "keys"
    key_files = Settings(
        wechatpay_api_v3_key_path=str(keys / "wechatpay-apiv3.key"),
        wechatpay_merchant_key_path=str(keys / "wechatpay-merchant.pem"),
        wechatpay_platform_keys_dir=str(keys / "wechatpay-platform"),
    )
    # Made once here: the sandbox and the API would otherwise race to create them.
    ensure_local_keys(key_files)
    shared = {
        "CHARITY_KAFKA_BOOTSTRAP": bootstrap,
        "CHARITY_TOPIC_PREFIX": topics.prefix,
        "CHARITY_DATABASE_URL": database_url,
        "CHARITY_STAFF_TOKEN": STAFF_TOKEN,
        "CHARITY_VAR_DIR": str(workdir),
        "CHARITY_API_PORT": str(api_port),
        "CHARITY_SANDBOX_PORT": str(sandbox_port),
        "CHARITY_PUBLIC_BASE_URL": api_url,
        "CHARITY_PAYMENT_BASE_URL": sandbox_url,
        "CHARITY_DONATIONS_PER_CLIENT_PER_MINUTE": NO_LIMIT,
        "CHARITY_DONATIONS_PER_PROJECT_PER_MINUTE": NO_LIMIT,
        "CHARITY_WECHATPAY_API_V3_KEY_PATH": key_files.wechatpay_api_v3_key_path,
        "CHARITY_WECHATPAY_MERCHANT_KEY_PATH": key_files.wechatpay_merchant_key_path,
        "CHARITY_WECHATPAY_PLATFORM_KEYS_DIR": key_files.wechatpay_platform_keys_dir,
    }
    ledger_env = {
        **shared,
        "CHARITY_LEDGER_GROUP": f"giving-bench-{uuid.uuid4().hex[:8]}",
        "CHARITY_LEDGER_HTTP_PORT": str(ledger_port),
        "CHARITY_SIGNING_KEY": str(keys / "tree-head-ed25519.pem"),
        "CHARITY_CREATE_SIGNING_KEY": "true",  # a scratch database, PostgreSQL too
    }
    with contextlib.ExitStack() as stack:
        processes: dict[str, ServiceProcess] = {}
        # The ledger first: it creates the database (the donor store's tables too).
        for name, env, ready in (
            ("ledger", ledger_env, f"http://127.0.0.1:{ledger_port}/readyz"),
            ("sandbox", shared, f"{sandbox_url}/sandbox/deliveries"),
            ("api", shared, f"{api_url}/readyz"),
        ):
            processes[name] = ServiceProcess(name, env, workdir, ready)
            stack.callback(processes[name].stop)
        api_urls = [api_url]
        for n, port in enumerate(more_api_ports, start=2):
            api_urls.append(f"http://127.0.0.1:{port}")
            env, name = {**shared, "CHARITY_API_PORT": str(port)}, f"api-{n}"
            processes[name] = ServiceProcess("api", env, workdir, f"{api_urls[-1]}/readyz", name=name)
            stack.callback(processes[name].stop)
        yield GivingStack(api_url, sandbox_url, database_url, processes, key_files, api_urls)


class CpuMeter:
    """CPU seconds a second of each process group, and of the whole machine, over a stretch."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.load_before = load_average()
        self._before = {name: cpu_seconds(*group) for name, group in pids.items()}
        self._busy, self._started = machine_busy(), time.monotonic()

    def report(self) -> dict[str, Any]:
        elapsed = time.monotonic() - self._started
        used = {name: cpu_seconds(*group) - self._before[name] for name, group in self.pids.items()}
        busy = machine_busy() - self._busy
        return {
            "load_average_before": self.load_before,
            "cpu_per_s": {name: round(seconds / elapsed, 2) for name, seconds in used.items()},
            "machine_cpu_busy_per_s": round(busy / elapsed, 2),
            "others_cpu_per_s": round((busy - sum(used.values())) / elapsed, 2),
        }

    def seconds(self, name: str) -> float:
        return cpu_seconds(*self.pids[name]) - self._before[name]


class JournalWatcher:
    """A thread reading the journal every POLL_S: each new entry's recorded_at and when it was seen."""

    def __init__(self, database_url: str) -> None:
        self.engine = create_engine(database_url)
        self.entries: dict[str, tuple[float, float]] = {}  # entry id → (recorded_at, seen), wall clock
        self._watched: set[str] = set()
        self.watched_found = 0  # how many of the watched ids have been seen
        with self.engine.connect() as conn:
            self._after = int(conn.scalar(select(func.coalesce(func.max(journal.c.seq), 0))) or 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="journal-watcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        query = select(journal.c.seq, journal.c.entry_id, journal.c.recorded_at).order_by(journal.c.seq)
        with self.engine.connect() as conn:
            while not self._stop.wait(POLL_S):
                rows = conn.execute(query.where(journal.c.seq > self._after)).all()
                seen = time.time()
                conn.rollback()  # no snapshot held between polls
                for seq, entry_id, recorded_at in rows:
                    aware = recorded_at if recorded_at.tzinfo else recorded_at.replace(tzinfo=UTC)
                    self.entries[entry_id] = (aware.timestamp(), seen)
                    self._after = seq
                    if entry_id in self._watched:
                        self.watched_found += 1

    def watch(self) -> None:
        """Start counting anew the ids ``expect`` is given, as they arrive (in watched_found)."""
        self.watched_found = 0
        self._watched = set()

    def expect(self, entry_id: str) -> None:
        """Count this id when it arrives; call before it can be in the journal."""
        self._watched.add(entry_id)

    def wait_for(self, entry_ids: set[str], timeout: float) -> set[str]:
        """Wait until every id is in the journal; the ids still missing when the time is up."""
        deadline = time.monotonic() + timeout
        while (missing := entry_ids - self.entries.keys()) and time.monotonic() < deadline:
            time.sleep(0.1)
        return missing

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.engine.dispose()


# --- donors and payers ------------------------------------------------------------------------------


def _gift(index: int) -> bytes:
    """The index-th donor's gift: spread over the projects, every other one with a masked name."""
    gift: dict[str, Any] = {"project_id": PROJECTS[index % len(PROJECTS)], "amount_fen": 100 + index % 500}
    if index % 2:
        gift |= {"anonymity": "masked", "display_name": "王小明", "consent_to_show_name": True}
    return json.dumps(gift).encode()


async def _pledge_one(connection: KeepAlive, index: int) -> tuple[str, int]:
    """The pledge's donation id and amount in fen."""
    status, answer = await connection.request("POST", "/api/donations", _gift(index), JSON_BODY)
    if status != 201:
        raise RuntimeError(f"pledge answered {status}: {answer[:300]!r}")
    made = json.loads(answer)
    return str(made["donation_id"]), int(made["amount_fen"])


async def pledge(api_urls: str | Sequence[str], count: int, connections: int) -> dict[str, int]:
    """``count`` pledges, as fast as the API (or the APIs, the connections spread over
    them) answers; their donation ids → amounts in fen, in the order they were made."""
    pool = Pool(api_urls, connections)
    jobs = iter(range(count))
    donation_ids: dict[str, int] = {}

    async def donor(connection: KeepAlive) -> None:
        for index in jobs:
            donation_id, amount_fen = await _pledge_one(connection, index)
            donation_ids[donation_id] = amount_fen

    try:
        await asyncio.gather(*(donor(c) for c in pool.connections))
    finally:
        pool.close()
    return donation_ids


class Pledger:
    """Donors pledging just ahead of the payers, in flight: at most ``ahead`` pledged orders wait
    to be paid, so the API takes a pledge for every gift paid while the run lasts."""

    def __init__(self, api_url: str, connections: int, ahead: int) -> None:
        self.ahead = ahead
        self.answer_s: list[float] = []
        self._pool = Pool(api_url, connections)
        self._ready: asyncio.Queue[str | BaseException] = asyncio.Queue()
        self._room = asyncio.Semaphore(ahead)
        self._indexes = itertools.count()
        self._donors = [asyncio.create_task(self._donor(c)) for c in self._pool.connections]

    async def _donor(self, connection: KeepAlive) -> None:
        try:
            while True:
                await self._room.acquire()
                sent = time.monotonic()
                self._ready.put_nowait((await _pledge_one(connection, next(self._indexes)))[0])
                self.answer_s.append(time.monotonic() - sent)
        except Exception as error:  # the payer waiting for a pledge hears of it
            self._ready.put_nowait(error)

    async def filled(self) -> None:
        while self._ready.qsize() < self.ahead:
            await asyncio.sleep(0.05)

    async def next(self) -> str:
        donation_id = await self._ready.get()
        if isinstance(donation_id, BaseException):
            raise donation_id
        self._room.release()
        return donation_id

    async def stop(self) -> None:
        for donor in self._donors:
            donor.cancel()
        await asyncio.gather(*self._donors, return_exceptions=True)
        self._pool.close()


@dataclass(frozen=True)
class Paid:
    donation_id: str
    due: float  # wall clock: when the schedule wanted it paid
    sent: float
    answered: float  # the pay's answer (the sandbox had started delivering by then), or the API's 204
    newly_paid: bool
    # When the gift's clock starts: the pay's answer, after which the sandbox delivers the
    # notification; or, with this process as the notifier, when the notification left.
    clock_from: float


async def pay(
    pool: Pool,
    count: int,
    next_order: Callable[[], Awaitable[str]],
    rate: float | None = None,
    keep_going: Callable[[int], bool] = lambda _: True,
) -> list[Paid]:
    """Pay ``count`` orders on the sandbox: the i-th due at start + i/rate (open loop), or all at
    once. Stops early once keep_going(how many were handed to the payers) is False, or when
    orders come too slowly to be paid within LATE_S of the schedule's end."""
    queue: asyncio.Queue[tuple[str, float] | None] = asyncio.Queue()
    paid: list[Paid] = []

    async def payer(connection: KeepAlive) -> None:
        while (job := await queue.get()) is not None:
            donation_id, due = job
            sent = time.time()
            path = f"/sandbox/orders/{out_trade_no_for(donation_id)}/pay"
            status, answer = await connection.request("POST", path)
            answered = time.time()
            if status != 200:
                raise RuntimeError(f"pay answered {status}: {answer[:300]!r}")
            paid.append(
                Paid(donation_id, due, sent, answered, bool(json.loads(answer)["newly_paid"]), answered)
            )

    payers = [asyncio.create_task(payer(c)) for c in pool.connections]
    started = time.time()
    late = started + (count / rate if rate else 0) + LATE_S
    for index in range(count):
        due = started + index / rate if rate else started
        if (delay := due - time.time()) > 0:
            await asyncio.sleep(delay)
        if not keep_going(index) or time.time() > late:
            break
        queue.put_nowait((await next_order(), due))
    for _ in payers:
        queue.put_nowait(None)
    await asyncio.gather(*payers)
    return paid


def listed(orders: Sequence[str]) -> Callable[[], Awaitable[str]]:
    """The orders one after another, for ``pay``."""
    remaining = iter(orders)

    async def next_order() -> str:
        return next(remaining)

    return next_order


async def _give_steadily(
    stack: GivingStack, watcher: JournalWatcher, rate: float, count: int, pledged: Sequence[str] = ()
) -> tuple[list[Paid], list[float]]:
    """Pledge and pay ``count`` gifts at ``rate``, the pledges a second's worth ahead (or, given
    ``pledged``, pay those orders, pledged before the run); the gifts paid and the pledges'
    answer times.

    Paying stops once more than a second's worth of gifts (at least MIN_BEHIND) are paid but
    not yet in the journal: the system is not keeping up, and paying on would only pile
    notifications up in the sandbox, waiting for its connections and timing out into retries."""
    behind = max(MIN_BEHIND, int(rate))
    pledger = None if pledged else Pledger(stack.api_url, PLEDGE_CONNECTIONS, ahead=behind)
    orders = listed(pledged)
    pool = Pool(stack.sandbox_url, PAY_CONNECTIONS)

    async def next_order() -> str:
        donation_id = await (pledger.next() if pledger else orders())
        watcher.expect(derived_id("confirmed", donation_id))
        return donation_id

    try:
        if pledger:
            await pledger.filled()
        paid = await pay(
            pool, count, next_order, rate, lambda handed: handed - watcher.watched_found <= behind
        )
        return paid, pledger.answer_s if pledger else []
    finally:
        if pledger:
            await pledger.stop()
        pool.close()


async def _notify_steadily(
    stack: GivingStack, watcher: JournalWatcher, rate: float, signed: list[SignedNotification]
) -> list[Paid]:
    """Send the signed notifications at ``rate`` (open loop) over NOTIFY_CONNECTIONS, stopping
    as ``_give_steadily`` does once more than a second's worth are not yet journaled, but
    not during the warm-up: nothing is retried here, so a queue of the first second (cold
    caches, the first batches) costs no extra work, and whether it drains shows in the
    latencies after it."""
    behind = max(MIN_BEHIND, int(rate))
    warm_up = int(rate * WARMUP_S)
    for notification in signed:  # none can be in the journal before it is sent
        watcher.expect(derived_id("confirmed", notification.donation_id))
    sent = await notify(
        stack.api_urls,
        signed,
        NOTIFY_CONNECTIONS,
        rate,
        lambda handed: handed < warm_up or handed - watcher.watched_found <= behind,
    )
    return [Paid(s.donation_id, s.due, s.sent, s.answered, s.status == 204, s.sent) for s in sent]


def deliveries(sandbox_url: str, donation_ids: Sequence[str]) -> dict[str, int]:
    """How the sandbox's deliveries of these orders' notifications went (an attempt that was
    not answered 2xx within 5 s, or not at all, is retried after a back-off)."""
    wanted = {out_trade_no_for(d) for d in donation_ids}
    found = [
        d
        for d in httpx.get(f"{sandbox_url}/sandbox/deliveries", timeout=60).json()
        if d["out_trade_no"] in wanted
    ]
    states = Counter(d["state"] for d in found)
    return {
        "deliveries": len(found),
        **{state: states.get(state, 0) for state in ("delivered", "pending", "gave_up")},
        "attempts": sum(int(d["attempts"]) for d in found),
    }


def settle_deliveries(sandbox_url: str, donation_ids: Sequence[str], timeout: float) -> dict[str, int]:
    """Wait (up to ``timeout``) until no delivery of these orders is still being retried, so
    that the next run is not charged for this one's; how they went."""
    deadline = time.monotonic() + timeout
    while (went := deliveries(sandbox_url, donation_ids))["pending"] and time.monotonic() < deadline:
        time.sleep(1)
    return went


# --- the three runs -------------------------------------------------------------------------------


def notification_to_journal(
    stack: GivingStack,
    watcher: JournalWatcher,
    pids: dict[str, list[int]],
    rate: float,
    seconds: float,
    pledged_before: bool = False,
    notifier: str = "sandbox",
) -> dict[str, Any]:
    count = int(rate * (WARMUP_S + seconds))
    pledged: dict[str, int] = {}
    if pledged_before or notifier == "bench":
        log(f"notification → journal: pledging {count} orders first")
        # Through every API process: each has served a few hundred requests before the run.
        pledged = asyncio.run(pledge(stack.api_urls, count, PLEDGE_CONNECTIONS))
        watcher.wait_for({derived_id("pledged", d) for d in pledged}, timeout=JOURNAL_WAIT_S)
    log(f"notification → journal: {count} gifts {'paid' if pledged else 'pledged and paid'} at {rate:g}/s")
    if notifier == "bench":
        signed = signed_notifications(stack.keys, pledged)
        log(f"notification → journal: {len(signed)} notifications signed, sending them at {rate:g}/s")
        meter = CpuMeter(pids)
        watcher.watch()
        gifts = asyncio.run(_notify_steadily(stack, watcher, rate, signed))
        pledge_answer_s: list[float] = []
    else:
        meter = CpuMeter(pids)
        watcher.watch()
        gifts, pledge_answer_s = asyncio.run(_give_steadily(stack, watcher, rate, count, list(pledged)))
    paid = sorted(gifts, key=lambda p: p.due)
    cpu = meter.report()
    kept_up = len(paid) == count
    if not kept_up:
        log(f"stopped after {len(paid)} of {count} gifts")
    entry_of = {p.donation_id: derived_id("confirmed", p.donation_id) for p in paid}
    missing = watcher.wait_for(set(entry_of.values()), timeout=JOURNAL_WAIT_S)
    sandbox = (
        settle_deliveries(stack.sandbox_url, [p.donation_id for p in paid], timeout=JOURNAL_WAIT_S)
        if notifier == "sandbox"
        else None
    )
    # A run that stopped is reported whole: the stretch after the warm-up may be a handful of gifts.
    counted = [p for p in paid if p.due >= paid[0].due + WARMUP_S] if kept_up else paid
    found = [
        (p, watcher.entries[entry_of[p.donation_id]])
        for p in counted
        if entry_of[p.donation_id] not in missing
    ]
    recorded = [at for _, (at, _) in found]
    return {
        "rate_per_s": rate,
        # True: the orders were pledged before the run, which only paid them; False: donors
        # pledged during the run, so the API took a pledge for every gift as well.
        "pledged_before": pledged_before or notifier == "bench",
        # "sandbox": the orders were paid on the sandbox, which signed and delivered the
        # notifications; "bench": this process sent notifications signed before the run
        # (bench/giving_notifier.py), and "pay_answer_ms" is then the API's 204.
        "notifier": notifier,
        "seconds": seconds,
        "warmup_s": WARMUP_S,
        # False: paying stopped early, once more than max(MIN_BEHIND, rate) gifts were paid but
        # not journaled; the figures are then of every gift paid until it stopped, warm-up
        # included, and the rate was not sustained.
        "kept_up": kept_up,
        "paid": len(paid),
        "paying_s": round(paid[-1].answered - paid[0].sent, 2),
        "counted": len(counted),
        "achieved_pay_rate_per_s": round(
            len(counted) / (max(p.answered for p in counted) - min(p.sent for p in counted)), 1
        ),
        # How fast the counted gifts entered the journal, first to last: below the rate,
        # the system did not keep up and the latencies grew while paying.
        "journaled_per_s": round(len(found) / (max(recorded) - min(recorded)), 1) if len(found) > 1 else None,
        "pay_answer_ms": ms_summary([p.answered - p.sent for p in counted]),
        "pledge_answer_ms": ms_summary(pledge_answer_s),
        "behind_schedule_ms": ms_summary([p.sent - p.due for p in counted]),
        "to_recorded_at_ms": ms_summary([at - p.clock_from for p, (at, _) in found]),
        "to_seen_ms": ms_summary([seen - p.clock_from for p, (_, seen) in found]),
        "poll_interval_ms": POLL_S * 1000,
        f"not_in_journal_after_{JOURNAL_WAIT_S:g}s": len(missing),
        "sandbox": sandbox,
        **cpu,
    }


async def _flood(stack: GivingStack, orders: list[str]) -> tuple[list[Sample], dict[str, int]]:
    """Keep about FLOOD_BACKLOG notifications waiting for the API until every order is
    confirmed: the samples of its confirmations, counted from zero, and all its outcomes."""
    metrics = KeepAlive(stack.api_url)
    pool = Pool(stack.sandbox_url, PAY_CONNECTIONS)

    async def outcomes() -> dict[str, int]:
        status, text = await metrics.request("GET", "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return notification_outcomes(text.decode())

    try:
        before = await outcomes()
        samples: list[Sample] = []
        sent = 0
        give_up = time.monotonic() + FLOOD_LIMIT_S
        while True:
            now = await outcomes()
            at = time.monotonic()
            confirmed = now.get("confirmed", 0) - before.get("confirmed", 0)
            samples.append((at, confirmed))
            if confirmed >= len(orders):
                return samples, {name: count - before.get(name, 0) for name, count in now.items()}
            if at > give_up:
                raise TimeoutError(f"only {confirmed} of {len(orders)} orders confirmed in {FLOOD_LIMIT_S} s")
            top_up = min(len(orders) - sent, FLOOD_BACKLOG - (sent - confirmed))
            if top_up > 0:
                await pay(pool, top_up, listed(orders[sent : sent + top_up]))
                sent += top_up
            await asyncio.sleep(SAMPLE_S)
    finally:
        metrics.close()
        pool.close()


def notifications_per_s(stack: GivingStack, pids: dict[str, list[int]], orders: list[str]) -> dict[str, Any]:
    log(f"notifications a second: {len(orders)} orders, about {FLOOD_BACKLOG} always waiting for the API")
    meter = CpuMeter(pids)
    samples, outcomes = asyncio.run(_flood(stack, orders))
    api_cpu_s = meter.seconds("api")
    cpu = meter.report()
    drain = sustained_drain(samples, baseline=0, done=samples[-1])
    return {
        "orders": len(orders),
        "backlog": FLOOD_BACKLOG,
        # Each a notification verified, its pledge marked paid with a receipt number, its
        # DonationConfirmed acknowledged by the broker, and 204 answered.
        "confirmed_2xx_per_s": round(drain.per_s, 1),
        "measured": {"confirmed": drain.events, "seconds": round(drain.seconds, 2)},
        "sample_interval_ms": SAMPLE_S * 1000,
        # Every outcome meanwhile: "repeated" are 204s to a delivery tried again after its
        # first attempt went unanswered for 5 s (the API had confirmed it meanwhile).
        "outcomes": outcomes,
        "api_cpu_ms_per_confirmed": round(api_cpu_s / len(orders) * 1000, 2),
        "sandbox": settle_deliveries(stack.sandbox_url, orders, timeout=JOURNAL_WAIT_S),
        **cpu,
    }


def notifications_sent_per_s(
    stack: GivingStack, pids: dict[str, list[int]], pledged: dict[str, int]
) -> dict[str, Any]:
    """Notifications a second with this process as the notifier: every order's notification
    signed first, then sent back to back over FLOOD_BACKLOG connections (so that many always
    wait for the API); the rate from the first sent to the last answered."""
    signed = signed_notifications(stack.keys, pledged)
    log(f"notifications a second: {len(signed)} signed, {FLOOD_BACKLOG} always waiting for the API")
    meter = CpuMeter(pids)
    sent = asyncio.run(notify([stack.api_url], signed, FLOOD_BACKLOG))  # one API process
    api_cpu_s = meter.seconds("api")
    cpu = meter.report()
    seconds = max(s.answered for s in sent) - min(s.sent for s in sent)
    return {
        "orders": len(signed),
        "backlog": FLOOD_BACKLOG,
        "notifier": "bench",
        # Each a notification verified, its pledge marked paid with a receipt number, its
        # DonationConfirmed acknowledged by the broker, and 204 answered.
        "confirmed_2xx_per_s": round(len(sent) / seconds, 1),
        "measured": {"confirmed": len(sent), "seconds": round(seconds, 2)},
        "statuses": dict(Counter(str(s.status) for s in sent)),
        "answer_ms": ms_summary([s.answered - s.sent for s in sent]),
        "api_cpu_ms_per_confirmed": round(api_cpu_s / len(sent) * 1000, 2),
        **cpu,
    }


async def _pages(api_url: str, target: str, seconds: float, connections: int) -> tuple[list[float], int]:
    """GET target back to back on each connection; the answer times of the 200s after the
    first second, and how many answers were not 200."""
    pool = Pool(api_url, connections)
    begin = time.monotonic()
    measure_from, end = begin + 1.0, begin + 1.0 + seconds
    times: list[float] = []
    failed = 0

    async def reader(connection: KeepAlive) -> None:
        nonlocal failed
        while (sent := time.monotonic()) < end:
            status, _ = await connection.request("GET", target)
            if sent >= measure_from:
                if status == 200:
                    times.append(time.monotonic() - sent)
                else:
                    failed += 1

    try:
        await asyncio.gather(*(reader(c) for c in pool.connections))
    finally:
        pool.close()
    return times, failed


def donate_page(stack: GivingStack, pids: dict[str, list[int]], seconds: float) -> dict[str, Any]:
    target = f"/donate?project={PROJECTS[0]}"
    log(f"donate page: GET {target} over {PAGE_CONNECTIONS} connections for {seconds:g} s")
    meter = CpuMeter(pids)
    times, failed = asyncio.run(_pages(stack.api_url, target, seconds, PAGE_CONNECTIONS))
    return {
        "target": target,
        "connections": PAGE_CONNECTIONS,
        "seconds": seconds,
        "served_200": len(times),
        "not_200": failed,
        "per_s": round(len(times) / seconds, 1),
        "answer_ms": ms_summary(times),
        **meter.report(),
    }


def giving_bench(
    rates: Sequence[float] = (200,),
    seconds: float = 20,
    flood_orders: int = 1000,
    page_seconds: float = 10,
    backend: str = "sqlite",
    pledged_before: bool = False,
    notifier: str = "bench",
    apis: int = 1,
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "load_average_before": load_average(),
        "database": backend,
        "notifier": notifier,
        # API processes taking the steady runs' notifications (the other runs use the first)
        "api_processes": apis,
    }
    with (
        broker() as (kafka, broker_pid),
        bench_topics(kafka) as topics,
        tempfile.TemporaryDirectory(prefix="giving-bench-") as tmp,
        database(backend, Path(tmp)) as database_url,
        giving_stack(kafka, topics, Path(tmp), database_url, apis) as stack,
    ):
        open_projects(stack.api_url, PROJECTS)
        pids = stack.pids(broker_pid)
        watcher = JournalWatcher(stack.database_url)
        try:
            log(f"pledging {flood_orders} orders, for the notifications a second")
            meter, started = CpuMeter(pids), time.monotonic()
            donation_ids = asyncio.run(pledge(stack.api_url, flood_orders, PLEDGE_CONNECTIONS))
            pledged_s, pledging_cpu = time.monotonic() - started, meter.report()
            unjournaled = watcher.wait_for({derived_id("pledged", d) for d in donation_ids}, timeout=120)
            report["pledges"] = {
                "count": len(donation_ids),
                "per_s": round(len(donation_ids) / pledged_s, 1),
                "connections": PLEDGE_CONNECTIONS,
                "not_in_journal_after_120s": len(unjournaled),
                **pledging_cpu,
            }
            report["notification_to_journal"] = [
                notification_to_journal(stack, watcher, pids, rate, seconds, pledged_before, notifier)
                for rate in rates
            ]
        finally:
            watcher.stop()
        report["notifications"] = (
            notifications_sent_per_s(stack, pids, donation_ids)
            if notifier == "bench"
            else notifications_per_s(stack, pids, list(donation_ids))
        )
        report["donate_page"] = donate_page(stack, pids, page_seconds)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="200", help="orders paid a second, steady; one run each")
    parser.add_argument("--seconds", type=float, default=20, help="how long to pay at each rate")
    parser.add_argument("--flood-orders", type=int, default=1000, help="orders for notifications a second")
    parser.add_argument("--page-seconds", type=float, default=10)
    parser.add_argument(
        "--database", choices=BACKENDS, default="sqlite", help="the ledger's and donor store's"
    )
    parser.add_argument(
        "--pledged-before",
        action="store_true",
        help="pledge each steady run's orders before it, so the run only pays them (notifications alone)",
    )
    parser.add_argument(
        "--notifier",
        choices=("bench", "sandbox"),
        default="bench",
        help="who sends the payment notifications: this process, signed beforehand as the sandbox "
        "would (bench/giving_notifier.py), or the sandbox itself, each paid order signed and delivered there",
    )
    parser.add_argument(
        "--apis",
        type=int,
        default=1,
        help="API processes; with --notifier bench the steady runs' notifications are spread over them "
        "(the notifications-a-second and page runs use one)",
    )
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    report = giving_bench(
        rates,
        args.seconds,
        args.flood_orders,
        args.page_seconds,
        args.database,
        args.pledged_before,
        args.notifier,
        args.apis,
    )
    print(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
