"""The HTTP edge without a broker: pages, QR code, staff endpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.display.app import create_app
from services.display.options import DisplayOptions
from services.display.venues import load_catalogue
from services.platform.settings import Settings
from tests.fixtures.fake_ledger import feed_event

STAFF = {"Authorization": "Bearer staff-secret"}


@pytest.fixture
def client(venues_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1", public_base_url="https://give.example.org", staff_token="staff-secret"
    )
    options = DisplayOptions(
        venues_path=venues_path,
        decisions_path=venues_path.with_name("moderation-decisions.jsonl"),
        reload_poll_s=3600,
    )
    app = create_app(settings, load_catalogue(venues_path), options, follow=False)
    with TestClient(app) as test_client:
        yield test_client


def test_the_screen_page_is_chinese_first_and_carries_the_venue(client: TestClient) -> None:
    page = client.get("/screen/botanic-garden")
    assert page.status_code == 200
    assert '<html lang="zh-Hans">' in page.text
    assert "慈善植造社" in page.text and "白塘植物园" in page.text
    assert 'class="theme-garden' in page.text
    assert "/screen/botanic-garden/qr.svg" in page.text


def test_the_qr_code_points_at_the_venue_donate_page(client: TestClient) -> None:
    svg = client.get("/screen/event-hall/qr.svg")
    assert svg.headers["content-type"].startswith("image/svg+xml")
    assert "https://give.example.org/donate?venue=event-hall" in svg.text
    assert client.get("/screen/nowhere/qr.svg").status_code == 404


def test_an_unknown_venue_gets_a_readable_error_page(client: TestClient) -> None:
    page = client.get("/screen/<script>")
    assert page.status_code == 404
    assert "未找到场馆屏幕" in page.text
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text


def test_the_stream_is_refused_while_catching_up(client: TestClient) -> None:
    response = client.get("/screen/botanic-garden/events")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "2"
    assert client.get("/readyz").status_code == 503


def test_staff_endpoints_need_the_token(client: TestClient) -> None:
    assert client.get("/staff/venues").status_code == 401
    assert client.get("/staff/venues", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/staff/venues", headers=STAFF).status_code == 200


def test_staff_can_add_a_venue_and_it_is_written_to_the_file(client: TestClient, venues_path: Path) -> None:
    body = {"title": {"zh": "图书馆", "en": "Library"}, "projects": ["elderly-meals"], "theme": "hall"}
    response = client.put("/staff/venues/library", json=body, headers=STAFF)
    assert response.status_code == 200
    saved = json.loads(venues_path.read_text(encoding="utf-8"))
    assert "library" in [v["id"] for v in saved["venues"]]
    assert client.get("/screen/library").status_code == 200
    bad = client.put("/staff/venues/library", json={"title": {"zh": "x"}, "projects": []}, headers=STAFF)
    assert bad.status_code == 422
    assert client.delete("/staff/venues/library", headers=STAFF).status_code == 200
    assert client.get("/screen/library").status_code == 404


def test_a_decision_that_cannot_be_recorded_is_refused_and_changes_nothing(venues_path: Path) -> None:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", staff_token="staff-secret")
    # A directory where the decisions file should be: it can be neither read nor appended to.
    unwritable = venues_path.parent / "decisions-dir"
    unwritable.mkdir()
    options = DisplayOptions(venues_path=venues_path, decisions_path=unwritable, reload_poll_s=3600)
    app = create_app(settings, load_catalogue(venues_path), options, follow=False)
    with TestClient(app) as client:  # starts, though the decisions cannot be read
        held = feed_event("elderly-meals", amount_fen=30_00, seq=1, message="这是 坏 词")
        app.state.hub.ingest([held])
        response = client.post(f"/staff/moderation/{held.event_id}/approve", headers=STAFF)
        assert response.status_code == 503 and "nothing changed" in response.json()["detail"]
        queue = client.get("/staff/moderation", headers=STAFF).json()
        assert [m["id"] for m in queue] == [held.event_id]  # still held, still decidable
