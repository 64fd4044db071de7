"""Fixtures for the display: venue files, a real gateway on a free port, the ledger's echo."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.contracts.topics import Topics
from services.display.main import Gateway
from services.display.options import DisplayOptions
from services.display.venues import load_catalogue
from services.platform.settings import Settings
from tests.fixtures.fake_ledger import LedgerEcho
from tests.fixtures.kafka import free_ports

VENUES: dict[str, Any] = {
    "moderation": {"mode": "wordlist", "blocked_words": ["坏词"]},
    "venues": [
        {
            "id": "botanic-garden",
            "title": {"zh": "慈善植造社", "en": "Charity Planting Club"},
            "subtitle": {"zh": "白塘植物园", "en": "Baitang Botanic Garden"},
            "projects": ["charity-plants", "elderly-meals", "child-protection"],
            "theme": "garden",
            "feed": {"show_messages": True},
        },
        {
            "id": "community-centre",
            "title": {"zh": "民众联络所", "en": "Community Centre"},
            "projects": ["elderly-meals", "community-embedded", "veterans-care", "child-protection"],
            "theme": "community",
        },
        {
            "id": "event-hall",
            "title": {"zh": "慈善之夜", "en": "Charity Evening"},
            "subtitle": {"zh": "活动大厅", "en": "Event Hall"},
            "projects": [
                "elderly-meals",
                "child-protection",
                "community-embedded",
                "veterans-care",
                "charity-plants",
            ],
            "theme": "hall",
        },
    ],
}


@pytest.fixture
def venues_path(tmp_path: Path) -> Path:
    path = tmp_path / "venues.json"
    path.write_text(json.dumps(VENUES, ensure_ascii=False), encoding="utf-8")
    return path


GatewayFactory = Callable[..., Gateway]


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"gateway at {url} not ready within {timeout}s")


@pytest.fixture
def start_gateway(kafka_bootstrap: str, topics: Topics, venues_path: Path) -> Iterator[GatewayFactory]:
    """Starts gateways (in threads) on this test's topics; all are stopped afterwards."""
    started: list[Gateway] = []

    def start(wait: bool = True, prefix: str | None = None, **overrides: Any) -> Gateway:
        settings = Settings(
            kafka_bootstrap=kafka_bootstrap,
            topic_prefix=topics.prefix if prefix is None else prefix,
            public_base_url="https://give.example.org",
            staff_token="staff-secret",
        )
        defaults = {
            "venues_path": venues_path,
            "decisions_path": venues_path.with_name("moderation-decisions.jsonl"),
            "heartbeat_s": 15.0,
        }
        options = DisplayOptions(**{**defaults, **overrides})
        gateway = Gateway(settings, options, load_catalogue(venues_path), port=free_ports(1)[0])
        gateway.start_in_thread()
        started.append(gateway)
        if wait:
            wait_ready(gateway.url)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


@pytest.fixture
def echo(kafka_bootstrap: str, topics: Topics) -> Iterator[LedgerEcho]:
    producer = LedgerEcho(kafka_bootstrap, topics, producer_config={"linger_ms": 0})
    yield producer
    producer.close()
