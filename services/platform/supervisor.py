"""`charity-ledger run`: the whole system on one machine, stopped as one by Ctrl-C."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx

from services.contracts.topics import Topics
from services.platform import demo
from services.platform.kafka_admin import ensure_topics
from services.platform.kafka_launcher import LocalKafka
from services.platform.settings import VAR_DIR, Settings


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
            for name, child in self.children.items():
                if child.poll() is not None:
                    print(
                        f"\n{name} exited with {child.returncode}; see {VAR_DIR / (name + '.log')}",
                        flush=True,
                    )
                    self.stop.set()
                    return

    def terminate(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for name, child in self.children.items():
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"{name} did not stop in time; killing it", flush=True)
                child.kill()


def run(demo_data: bool = True, trickle_s: float = 3.0) -> int:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("CHARITY_STAFF_TOKEN", secrets.token_urlsafe(18))
    port = int(env.get("CHARITY_KAFKA_PORT", "9092"))
    env.setdefault("CHARITY_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    os.environ.update(env)
    settings = Settings()
    broker = LocalKafka(VAR_DIR / "kafka", port=port, controller_port=port + 1)
    print("starting Kafka (first run downloads the broker jars with Maven)…", flush=True)
    broker.start(timeout=120)
    ensure_topics(settings.kafka_bootstrap, Topics(settings.topic_prefix).specs())
    services = ["ledger", "api"] + (["display"] if _display_available() else [])
    sup = Supervisor(settings, services)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sup.stop.set())
    try:
        for name in services:
            sup.spawn(name, env)
        api = f"http://{settings.api_host}:{settings.api_port}"
        if not demo.wait_until(lambda: _ready(api), timeout=60):
            print(f"the API did not become ready; see {VAR_DIR / 'api.log'}", flush=True)
            return 1
        if demo_data:
            demo.load_demo(api, settings.staff_token)
        _print_urls(settings, services)
        threading.Thread(target=sup.watch, daemon=True).start()
        if demo_data and trickle_s > 0:
            _trickle(api, settings.staff_token, sup.stop, trickle_s)
        sup.stop.wait()
        return 0
    finally:
        print("\nstopping…", flush=True)
        sup.terminate()
        broker.stop()
        print("stopped.", flush=True)


def _display_available() -> bool:
    return (Path(__file__).resolve().parents[1] / "display" / "main.py").exists()


def _ready(api: str) -> bool:
    try:
        return httpx.get(f"{api}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _trickle(api: str, token: str, stop: threading.Event, every_s: float) -> None:
    """A gift every few seconds, so the totals visibly rise."""
    with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        while not stop.wait(every_s):
            try:
                demo.post_random_donation(http)
            except httpx.HTTPError as exc:
                print(f"demo donation failed: {exc}", flush=True)


def _print_urls(settings: Settings, services: list[str]) -> None:
    api = f"http://{settings.api_host}:{settings.api_port}"
    lines = [
        "",
        "慈善捐赠账本已启动 · the charity ledger is running",
        f"  项目公示 Projects page     {api}/",
        f"  API docs                   {api}/docs",
        f"  Totals (JSON)              {api}/api/projects",
        f"  Ledger health / metrics    http://127.0.0.1:{settings.ledger_http_port}/readyz  …/metrics",
    ]
    if "display" in services:
        lines.append(
            f"  Venue screen               http://127.0.0.1:{settings.display_port}/screen/botanic-garden"
        )
    lines += [
        f"  Staff token                {settings.staff_token}",
        f"  Kafka                      {settings.kafka_bootstrap}   data and logs in {VAR_DIR}",
        "  A demo donation is posted every few seconds. Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)
