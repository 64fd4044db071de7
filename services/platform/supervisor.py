"""`charity-ledger run`: the whole system on one machine, stopped as one by Ctrl-C.

Stopping never depends on anyone reading our output: `make run | tee run.log` and
Ctrl-C kill tee too, usually before the supervisor's first word about stopping, and a
print to that dead pipe must not keep the children or the broker alive.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

import httpx

from services.contracts.topics import Topics
from services.payments.wechatpay_keys import ensure_local_keys
from services.platform import demo
from services.platform.kafka_admin import ensure_topics, replication_of
from services.platform.kafka_launcher import LocalKafka
from services.platform.settings import VAR_DIR, Settings


def say(text: str) -> None:
    """Print for the person at the terminal, and never fail because nobody reads any more."""
    try:
        print(text, flush=True)
    except (OSError, ValueError):  # BrokenPipeError, or stdout closed
        _stdout_to_devnull()


def _stdout_to_devnull() -> None:
    """Point stdout at /dev/null, so later prints and the final flush at exit don't fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, sys.stdout.fileno())
        finally:
            os.close(devnull)


class Supervisor:
    def __init__(self, settings: Settings, services: list[str]) -> None:
        self.settings = settings
        self.services = services
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stop = threading.Event()

    def spawn(self, name: str, env: dict[str, str]) -> None:
        log = open(VAR_DIR / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it until it exits
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "services.cli", name], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def watch(self) -> None:
        """Stop everything if a child dies: a half-running ledger is worse than none."""
        while not self.stop.wait(1.0):
            for name, child in list(self.children.items()):
                if child.poll() is not None:
                    say(f"\n{name} exited with {child.returncode}; see {VAR_DIR / (name + '.log')}")
                    self.stop.set()
                    return

    def terminate(self) -> None:
        """SIGTERM to every child still running, then wait for each (SIGKILL after 15 s)."""
        for child in self.children.values():
            # A child may exit between poll and signal (Ctrl-C reached it too).
            with contextlib.suppress(ProcessLookupError):
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
        for name, child in self.children.items():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop in time; killing it")
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    child.wait(timeout=5)


class _Signals:
    """SIGINT and SIGTERM ask for a stop. While starting, the first one also interrupts
    whatever is waiting (the broker's start, the API's readiness); after that they only
    set the stop event, so nothing interrupts the stop sequence itself."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.interrupt = True

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.stop.set()
        if self.interrupt:
            self.interrupt = False
            raise KeyboardInterrupt

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self)


def kafka_ports(settings: Settings) -> tuple[int, int]:
    """The local broker's client and controller ports: CHARITY_KAFKA_PORT (9092) and
    CHARITY_KAFKA_CONTROLLER_PORT (the client port + 1)."""
    port = settings.kafka_port
    return port, settings.kafka_controller_port or port + 1


def run(demo_data: bool = True, trickle_s: float = 3.0) -> int:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("CHARITY_STAFF_TOKEN", secrets.token_urlsafe(18))
    port, controller_port = kafka_ports(Settings())
    env.setdefault("CHARITY_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    # The demo gifts all come from this machine's loopback address: one "client" for the
    # per-client limit, which stays at its default for everyone else (docs/donors.md).
    env.setdefault("CHARITY_DONATIONS_PER_CLIENT_PER_MINUTE", "600")
    os.environ.update(env)
    settings = Settings()
    ensure_local_keys(settings)  # the sandbox's and the merchant's keys, made once in var/keys
    broker = LocalKafka(VAR_DIR / "kafka", port=port, controller_port=controller_port)
    services = ["ledger", "sandbox", "api"] + (["display"] if _display_available() else [])
    sup = Supervisor(settings, services)
    signals = _Signals(sup.stop)
    signals.install()
    try:
        say("starting Kafka (first run downloads the broker jars with Maven)…")
        broker.start(timeout=120)
        ensure_topics(
            settings.kafka_bootstrap,
            Topics(settings.topic_prefix).specs(),
            replication=replication_of(settings),
        )
        for name in services:
            sup.spawn(name, env)
        api = f"http://{settings.api_host}:{settings.api_port}"
        if not demo.wait_until(lambda: _ready(api) or sup.stop.is_set(), timeout=60):
            say(f"the API did not become ready; see {VAR_DIR / 'api.log'}")
            return 1
        if demo_data and not sup.stop.is_set():
            demo.load_demo(api, settings.payment_base_url, settings.staff_token)
        signals.interrupt = False
        if not sup.stop.is_set():
            _print_urls(settings, services)
        threading.Thread(target=sup.watch, daemon=True).start()
        if demo_data and trickle_s > 0:
            _trickle(api, settings.payment_base_url, sup.stop, trickle_s)
        sup.stop.wait()
        return 0
    except KeyboardInterrupt:
        return 0  # stopped while starting
    finally:
        signals.interrupt = False
        _stop_all(sup, broker)


def _stop_all(sup: Supervisor, broker: LocalKafka) -> None:
    """The children first (they use the broker), then the broker, whatever fails on the way."""
    try:
        say("\nstopping…")
        sup.terminate()
    finally:
        broker.stop()
        say("stopped.")


def _display_available() -> bool:
    return (Path(__file__).resolve().parents[1] / "display" / "main.py").exists()


def _ready(api: str) -> bool:
    try:
        return httpx.get(f"{api}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _trickle(api: str, sandbox: str, stop: threading.Event, every_s: float) -> None:
    """A gift every few seconds, paid on the sandbox, so the totals visibly rise."""
    with httpx.Client(base_url=api, timeout=10) as http, httpx.Client(base_url=sandbox, timeout=10) as pay:
        while not stop.wait(every_s):
            try:
                demo.give_random_gift(http, pay)
            except httpx.HTTPError as exc:
                say(f"demo donation failed: {exc}")


def _print_urls(settings: Settings, services: list[str]) -> None:
    api = f"http://{settings.api_host}:{settings.api_port}"
    lines = [
        "",
        "慈善捐赠账本已启动 · the charity ledger is running",
        f"  项目公示 Projects page     {api}/",
        f"  捐赠 Give                  {api}/donate",
        f"  查询收据 Receipts          {api}/receipts",
        f"  Payment sandbox            {settings.payment_base_url}/sandbox/deliveries",
        f"  API docs                   {api}/docs",
        f"  Totals (JSON)              {api}/api/projects",
        f"  Ledger health / metrics    http://127.0.0.1:{settings.ledger_http_port}/readyz  …/metrics",
    ]
    if "display" in services:
        lines.append(
            f"  Venue screen               http://127.0.0.1:{settings.display_port}/screen/botanic-garden"
        )
    lines += [
        f"  工作人员 Staff console      {api}/staff",
        # There is no default account: the first administrator is made by hand, once.
        "    first administrator:     .venv/bin/charity-ledger staff add --role admin <name>",
        f"  Staff token                {settings.staff_token}",
        *_phone_hint(settings),
        f"  Kafka                      {settings.kafka_bootstrap}   data and logs in {VAR_DIR}",
        "  A demo gift is pledged and paid on the sandbox every few seconds. Ctrl-C stops everything.",
        "",
    ]
    say("\n".join(lines))


def lan_address() -> str | None:
    """This machine's address on its local network, if it has one (no packet is sent)."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routing only decides the source address
        address: str = probe.getsockname()[0]
        return None if address.startswith("127.") else address
    return None


def _phone_hint(settings: Settings) -> list[str]:
    """QR codes on the screens carry CHARITY_PUBLIC_BASE_URL; 127.0.0.1 on a phone is the phone."""
    if not settings.public_base_url.startswith(("http://127.", "http://localhost")):
        return [f"  Phones scan QR codes to     {settings.public_base_url}/donate"]
    lan = lan_address()
    if lan is None:
        return ["  Phones: set CHARITY_PUBLIC_BASE_URL to an address phones can reach (docs/donors.md)"]
    return [
        "  Phones on this network: stop, then run",
        f"    CHARITY_API_HOST=0.0.0.0 CHARITY_PUBLIC_BASE_URL=http://{lan}:{settings.api_port}",
        f"    CHARITY_SANDBOX_HOST=0.0.0.0 CHARITY_PAYMENT_PUBLIC_URL=http://{lan}:{settings.sandbox_port}",
        "    make run",
    ]
