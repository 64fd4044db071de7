"""From the console to the kiosk: an operator approves a held message and a held name on the
API's venue pages, and a real gateway (on the real broker) puts them on the venue's screen."""

from __future__ import annotations

from pathlib import Path

from services.api.display_gateway import DisplayGateway
from services.display.moderation import MASKED_NAME
from services.staff.domain.roles import Role
from tests.display.conftest import GatewayFactory
from tests.display.sse_client import SseStream
from tests.fixtures.fake_ledger import LedgerEcho
from tests.fixtures.staff import csrf_of, log_in, staff_app

MODERATION = "/staff/venues/botanic-garden/moderation"


def test_an_operator_approves_a_held_message_and_name_and_the_screen_shows_them(
    start_gateway: GatewayFactory, echo: LedgerEcho, tmp_path: Path
) -> None:
    gateway = start_gateway()
    stream = SseStream(f"{gateway.url}/screen/botanic-garden/events").start()
    stream.wait_for(lambda e: e.event == "snapshot")
    feed, _ = echo.gift("elderly-meals", 30_00, shown_name="{{7*7}}", message="这是 坏 词")
    feed.get(timeout=30)
    echo.flush()
    gift_id = stream.wait_for(lambda e: bool(e.data.get("feed"))).data["feed"][0]["id"]
    shown = {g["id"]: g for e in stream.data_events() for g in e.data.get("feed", [])}[gift_id]
    assert (shown["name"], shown["message"]) == (MASKED_NAME, None)  # both held

    with staff_app(tmp_path) as api:
        api.client.app.state.display = DisplayGateway(gateway.url, "staff-secret")  # type: ignore[attr-defined]
        api.add("ops-garden", Role.VENUE_OPERATOR, venues=frozenset({"botanic-garden"}))
        assert log_in(api.client, "ops-garden").status_code == 303
        page = api.client.get(MODERATION)
        assert page.status_code == 200 and "{{7*7}}" in page.text and "这是 坏 词" in page.text
        for subject in ("message", "name"):
            token = csrf_of(api.client.get(MODERATION).text)
            answer = api.client.post(
                f"{MODERATION}/{gift_id}",
                data={"csrf": token, "subject": subject, "decision": "approve"},
                follow_redirects=False,
            )
            assert answer.status_code == 303, answer.text
        assert "没有待审核的留言" in api.client.get(MODERATION).text

    stream.wait_for(lambda e: bool(e.data.get("names")))
    changes = [e.data for e in stream.data_events() if e.event == "update"]
    assert {"id": gift_id, "message": "这是 坏 词"} in [m for c in changes for m in c.get("messages", [])]
    assert {"id": gift_id, "name": "{{7*7}}"} in [n for c in changes for n in c.get("names", [])]
    decisions = (gateway.options.decisions_path).read_text(encoding="utf-8")
    assert decisions.count('"actor": "ops-garden"') == 2
    # A screen that connects now gets both in its snapshot.
    fresh = SseStream(f"{gateway.url}/screen/botanic-garden/events").start()
    snapshot = fresh.wait_for(lambda e: e.event == "snapshot").data["feed"]
    assert [(g["name"], g["message"]) for g in snapshot if g["id"] == gift_id] == [("{{7*7}}", "这是 坏 词")]
    stream.cut()
    fresh.cut()
