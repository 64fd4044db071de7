"""The console's venue pages: the list, a venue's configuration, moderation of held messages and
names, each scoped to a venue operator's venues, against the display gateway's app in-process."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.display_gateway import DisplayGateway
from services.display.moderation import MASKED_NAME
from services.staff.domain.roles import Role
from tests.fixtures.fake_ledger import feed_event
from tests.fixtures.gateway_in_process import InProcessGateway, in_process_gateway
from tests.fixtures.staff import StaffApp, csrf_of, log_in, staff_app

GOOD_CONFIG = {
    "title_zh": "一号厅新名",
    "title_en": "Hall One",
    "subtitle_zh": "",
    "subtitle_en": "",
    "projects": "meals\nbooks",
    "theme": "garden",
    "feed_scope": "venue",
    "show_messages": "on",
    "qr_url": "",
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[StaffApp, InProcessGateway]]:
    with staff_app(tmp_path) as made:
        gateway = in_process_gateway(tmp_path, "machine-s3cret")
        made.client.app.state.display = gateway.client  # type: ignore[attr-defined]
        made.add("ada", Role.ADMINISTRATOR)
        made.add("ops-one", Role.VENUE_OPERATOR, venues=frozenset({"hall-1"}))
        made.add("aud", Role.AUDITOR)
        yield made, gateway


def browser(made: StaffApp, username: str) -> TestClient:
    client = TestClient(made.client.app)
    assert log_in(client, username).status_code == 303
    return client


def post_form(client: TestClient, path: str, page: str, **fields: str) -> Any:
    token = csrf_of(client.get(page).text)
    return client.post(path, data={"csrf": token, **fields}, follow_redirects=False)


def saved_venues(gateway: InProcessGateway) -> dict[str, Any]:
    venues = json.loads(gateway.venues_path.read_text(encoding="utf-8"))["venues"]
    return {v["id"]: v for v in venues}


def test_an_operator_sees_and_configures_only_their_venues(app: tuple[StaffApp, InProcessGateway]) -> None:
    made, gateway = app
    ops = browser(made, "ops-one")
    listing = ops.get("/staff/venues")
    assert listing.status_code == 200
    assert "一号厅" in listing.text and "二号厅" not in listing.text
    assert "二号厅" in browser(made, "ada").get("/staff/venues").text

    page = ops.get("/staff/venues/hall-1")
    assert page.status_code == 200 and 'name="title_zh" value="一号厅"' in page.text
    saved = post_form(ops, "/staff/venues/hall-1", "/staff/venues/hall-1", **GOOD_CONFIG)
    assert saved.status_code == 303 and saved.headers["location"] == "/staff/venues/hall-1?saved=1"
    venue = saved_venues(gateway)["hall-1"]
    assert venue["title"] == {"zh": "一号厅新名", "en": "Hall One"}
    assert venue["projects"] == ["meals", "books"] and venue["theme"] == "garden"
    assert venue["feed"] == {"scope": "venue", "show_messages": True}
    assert gateway.hub.catalogue.venues["hall-1"].title_zh == "一号厅新名"  # applied, not only written
    assert "已保存" in ops.get("/staff/venues/hall-1?saved=1").text


def test_an_operator_of_one_venue_cannot_see_or_change_another_and_it_is_logged(
    app: tuple[StaffApp, InProcessGateway],
) -> None:
    made, gateway = app
    before = gateway.venues_path.read_text(encoding="utf-8")
    ops = browser(made, "ops-one")
    assert ops.get("/staff/venues/hall-2").status_code == 403
    assert ops.get("/staff/venues/hall-2/moderation").status_code == 403
    changed = post_form(ops, "/staff/venues/hall-2", "/staff/venues/hall-1", **GOOD_CONFIG)
    assert changed.status_code == 403 and "无权访问" in changed.text
    assert gateway.venues_path.read_text(encoding="utf-8") == before
    refusals = [(r.actor, r.target) for r in made.store.access_log(limit=3) if r.decision == "refused"]
    assert refusals == [
        ("ops-one", "POST /staff/venues/hall-2"),
        ("ops-one", "GET /staff/venues/hall-2/moderation"),
        ("ops-one", "GET /staff/venues/hall-2"),
    ]
    # An auditor reads everything but changes no venue.
    assert browser(made, "aud").get("/staff/venues").status_code == 403


def test_a_bad_configuration_is_shown_again_with_the_gateways_reason_and_nothing_changes(
    app: tuple[StaffApp, InProcessGateway],
) -> None:
    made, gateway = app
    before = gateway.venues_path.read_text(encoding="utf-8")
    ops = browser(made, "ops-one")
    nine = "\n".join(f"p{i}" for i in range(9))
    for bad, reason in (
        ({"projects": ""}, "&#39;projects&#39; must be a non-empty list of project ids"),
        ({"projects": nine}, "at most 8 projects fit on a screen"),
        ({"theme": "neon"}, "theme must be one of garden, community, hall, not &#39;neon&#39;"),
        ({"title_zh": "  "}, "&#39;title&#39; must be"),
    ):
        answer = post_form(ops, "/staff/venues/hall-1", "/staff/venues/hall-1", **{**GOOD_CONFIG, **bad})
        assert answer.status_code == 422, answer.text
        assert reason in answer.text and "显示网关拒绝了此配置" in answer.text
        assert 'name="title_en" value="Hall One"' in answer.text  # the form as typed
    assert gateway.venues_path.read_text(encoding="utf-8") == before


def test_a_form_without_its_csrf_token_is_refused(app: tuple[StaffApp, InProcessGateway]) -> None:
    made, gateway = app
    before = gateway.venues_path.read_text(encoding="utf-8")
    ops = browser(made, "ops-one")
    ops.get("/staff/venues/hall-1")
    stale = ops.post("/staff/venues/hall-1", data={"csrf": "0" * 64, **GOOD_CONFIG}, follow_redirects=False)
    assert stale.status_code == 403 and "表单已过期" in stale.text
    gift = feed_event("meals", amount_fen=100, seq=1, message="加油")
    gateway.hub.ingest([gift])
    decided = ops.post(
        f"/staff/venues/hall-1/moderation/{gift.event_id}",
        data={"subject": "message", "decision": "approve"},
        follow_redirects=False,
    )
    assert decided.status_code == 403
    assert gateway.venues_path.read_text(encoding="utf-8") == before and gateway.decisions() == []


def test_an_operator_approves_a_held_message_and_name_of_their_venue_only(
    app: tuple[StaffApp, InProcessGateway],
) -> None:
    made, gateway = app
    mine = feed_event("meals", amount_fen=100, seq=1, shown_name="{{7*7}}", message="加油")
    theirs = feed_event("books", amount_fen=200, seq=2, shown_name="<script>alert(1)</script>", message="好")
    plain = feed_event("meals", amount_fen=300, seq=3, shown_name="钱*")
    gateway.hub.ingest([mine, theirs, plain])
    ops = browser(made, "ops-one")
    page = ops.get("/staff/venues/hall-1/moderation")
    assert page.status_code == 200
    assert page.text.count(f'data-id="{mine.event_id}"') == 2  # its message and its name
    assert "{{7*7}}" in page.text and theirs.event_id not in page.text
    assert "&lt;script&gt;" not in page.text  # hall-2's name is not shown here at all
    assert f'class="recent-name" data-id="{plain.event_id}"' in page.text

    moderation = "/staff/venues/hall-1/moderation"
    for subject in ("message", "name"):
        answer = post_form(
            ops, f"{moderation}/{mine.event_id}", moderation, subject=subject, decision="approve"
        )
        assert answer.status_code == 303 and answer.headers["location"] == f"{moderation}?done=approve"
    flagged = post_form(ops, f"{moderation}/{plain.event_id}", moderation, subject="name", decision="flag")
    assert flagged.status_code == 303
    assert gateway.decisions() == [
        {"id": mine.event_id, "decision": "approved", "actor": "ops-one"},
        {"id": f"name:{mine.event_id}", "decision": "approved", "actor": "ops-one"},
        {"id": f"name:{plain.event_id}", "decision": "flagged", "actor": "ops-one"},
    ]
    entry = gateway.hub.state.entry(mine.event_id)
    assert entry is not None and (entry.shown_name, entry.message) == ("{{7*7}}", "加油")
    masked = gateway.hub.state.entry(plain.event_id)
    assert masked is not None and masked.shown_name == MASKED_NAME

    # Another venue's gift, through this venue's page: not held here.
    sideways = post_form(
        ops, f"{moderation}/{theirs.event_id}", moderation, subject="name", decision="approve"
    )
    assert sideways.status_code == 404
    bad = post_form(ops, f"{moderation}/{theirs.event_id}", moderation, subject="message", decision="flag")
    assert bad.status_code == 422
    assert len(gateway.decisions()) == 3


def test_a_gateway_that_cannot_be_reached_is_a_503_and_nothing_changes(
    app: tuple[StaffApp, InProcessGateway],
) -> None:
    made, _ = app
    made.client.app.state.display = DisplayGateway("http://127.0.0.1:1", "machine-s3cret")  # type: ignore[attr-defined]
    answer = browser(made, "ops-one").get("/staff/venues")
    assert answer.status_code == 503 and "cannot be reached" in answer.text
