"""Donor names on screens are moderated like messages: held names are masked until approved."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.display.app import create_app
from services.display.channel import ChannelLimits
from services.display.decisions import APPROVED, FLAGGED, REJECTED, DecisionLog, name_key
from services.display.hub import Hub
from services.display.moderation import MASKED_NAME, ModerationPolicy, Moderator
from services.display.options import DisplayOptions
from services.display.venues import Venue, VenueCatalogue, load_catalogue
from services.platform.settings import Settings
from tests.display.fake_screen import FakeScreen
from tests.fixtures.fake_ledger import feed_event, totals_event

STAFF = {"Authorization": "Bearer staff-secret"}


@pytest.mark.parametrize("name", ["<script>alert(1)</script>", "{{7*7}}", "${7*7}", "&#60;b&#62;", "张[三]"])
def test_a_name_that_looks_like_markup_or_a_template_is_held_and_masked(name: str) -> None:
    moderator = Moderator()
    assert moderator.review_name("gift-1", name, "meals", None) == MASKED_NAME
    [held] = moderator.held()
    assert (held.subject, held.text, held.reason, held.project_id) == (
        "name",
        name,
        "looks like markup",
        "meals",
    )


def test_ordinary_names_and_the_anonymous_label_pass() -> None:
    moderator = Moderator(ModerationPolicy(blocked_words=("坏词",)))
    for name in ("张*", "李小明", "Ann O.", MASKED_NAME, ""):
        assert moderator.review_name("gift-1", name) == name
    assert moderator.held() == []
    assert moderator.review_name("gift-2", "坏 词先生") == MASKED_NAME
    assert moderator.held()[0].reason == "blocked word"


def test_approval_releases_a_name_and_rejection_keeps_it_masked_even_after_a_restart() -> None:
    moderator = Moderator()
    moderator.review_name("gift-1", "{{7*7}}")
    moderator.review_name("gift-2", "<b>x</b>")
    assert moderator.decide_name("gift-1", APPROVED) is not None
    assert moderator.decide_name("gift-2", REJECTED) is None
    assert moderator.held() == []
    # The decisions are known before the feed is read again: nothing is held twice.
    assert moderator.review_name("gift-1", "{{7*7}}") == "{{7*7}}"
    assert moderator.review_name("gift-2", "<b>x</b>") == MASKED_NAME
    assert moderator.held() == []


def test_the_decisions_file_records_who_decided_and_names_apart_from_messages(tmp_path: Path) -> None:
    path = tmp_path / "decisions.jsonl"
    log = DecisionLog(path)
    log.append("gift-1", APPROVED, "ops-ann")
    log.append(name_key("gift-1"), FLAGGED, "ops-ann")
    log.append("gift-2", REJECTED)
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines == [
        {"id": "gift-1", "decision": "approved", "actor": "ops-ann"},
        {"id": "name:gift-1", "decision": "flagged", "actor": "ops-ann"},
        {"id": "gift-2", "decision": "rejected"},
    ]
    assert DecisionLog(path).read_new() == [
        ("gift-1", APPROVED),
        ("name:gift-1", FLAGGED),
        ("gift-2", REJECTED),
    ]
    with pytest.raises(ValueError, match="unknown decision"):
        log.append("gift-3", FLAGGED)  # only a name is flagged


def test_screens_see_a_name_masked_then_shown_when_approved_and_masked_when_flagged() -> None:
    async def body() -> None:
        garden = Venue("garden", "花园", "Garden", ("elderly-meals",))
        h = Hub(VenueCatalogue({"garden": garden}), limits=ChannelLimits(interval_s=0))
        h.mark_caught_up()
        screen = FakeScreen(h.open_stream("garden", None)[0])
        screen.take()
        held = feed_event("elderly-meals", amount_fen=50, seq=1, shown_name="{{7*7}}")
        plain = feed_event("elderly-meals", amount_fen=60, seq=2, shown_name="王*")
        h.ingest([held, totals_event("elderly-meals", raised_fen=50, as_of_seq=1)])
        h.ingest([plain, totals_event("elderly-meals", raised_fen=110, as_of_seq=2)])
        await asyncio.sleep(0.01)
        shown = [g["name"] for _, kind, data in screen.take() if kind == "update" for g in data["feed"]]
        assert shown == [MASKED_NAME, "王*"]

        h.decide(name_key(held.event_id), APPROVED)
        h.decide(name_key(plain.event_id), FLAGGED)
        await asyncio.sleep(0.01)
        names = [n for _, kind, data in screen.take() if kind == "update" for n in data.get("names", [])]
        assert names == [
            {"id": held.event_id, "name": "{{7*7}}"},
            {"id": plain.event_id, "name": MASKED_NAME},
        ]
        assert [m.text for m in h.moderator.held()] == ["王*"]  # the flagged name waits for staff
        assert "{{7*7}}" in h.channels["garden"].snapshot().decode()

    asyncio.run(body())


@pytest.fixture
def gateway(venues_path: Path) -> Iterator[tuple[TestClient, FastAPI]]:
    settings = Settings(kafka_bootstrap="127.0.0.1:1", staff_token="staff-secret")
    options = DisplayOptions(
        venues_path=venues_path,
        decisions_path=venues_path.with_name("moderation-decisions.jsonl"),
        reload_poll_s=3600,
    )
    app = create_app(settings, load_catalogue(venues_path), options, follow=False)
    with TestClient(app) as client:
        yield client, app


def test_the_staff_endpoints_list_decide_and_flag_names_per_venue(
    gateway: tuple[TestClient, FastAPI], venues_path: Path
) -> None:
    client, app = gateway
    # veterans-care is shown at the community centre, not at the botanic garden.
    hostile = feed_event("veterans-care", amount_fen=30_00, seq=1, shown_name="<script>alert(1)</script>")
    plain = feed_event("veterans-care", amount_fen=20_00, seq=2, shown_name="赵*")
    app.state.hub.ingest([hostile, plain])
    held = client.get("/staff/moderation", params={"venue": "community-centre"}, headers=STAFF).json()
    assert [(m["id"], m["subject"], m["text"]) for m in held] == [
        (hostile.event_id, "name", "<script>alert(1)</script>")
    ]
    assert client.get("/staff/moderation", params={"venue": "botanic-garden"}, headers=STAFF).json() == []
    refused = client.post(
        f"/staff/names/{hostile.event_id}/approve", params={"venue": "botanic-garden"}, headers=STAFF
    )
    assert refused.status_code == 404
    recent = client.get("/staff/feed", params={"venue": "community-centre"}, headers=STAFF).json()
    assert [g["name"] for g in recent] == ["赵*"]

    actor = {**STAFF, "X-Charity-Actor": "ops-ann"}
    approved = client.post(
        f"/staff/names/{hostile.event_id}/approve", params={"venue": "community-centre"}, headers=actor
    )
    assert approved.json() == {"status": "approved"}
    flagged = client.post(
        f"/staff/names/{plain.event_id}/flag", params={"venue": "community-centre"}, headers=actor
    )
    assert flagged.json() == {"status": "flagged"}
    assert [m["text"] for m in client.get("/staff/moderation", headers=STAFF).json()] == ["赵*"]
    assert client.post(f"/staff/names/{plain.event_id}/maybe", headers=STAFF).status_code == 404
    decisions = venues_path.with_name("moderation-decisions.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line) for line in decisions.splitlines()] == [
        {"id": f"name:{hostile.event_id}", "decision": "approved", "actor": "ops-ann"},
        {"id": f"name:{plain.event_id}", "decision": "flagged", "actor": "ops-ann"},
    ]
