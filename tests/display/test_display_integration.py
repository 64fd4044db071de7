"""The gateway on the real broker: latency, resumes, catch-up, restarts, limits."""

from __future__ import annotations

import socket
import time
import uuid

import httpx
import pytest

from services.contracts.codec import EventCodec
from services.contracts.topics import Topics
from services.display.main import Gateway
from services.platform.kafka_admin import delete_topics, ensure_topics
from services.platform.kafka_io import make_producer
from tests.display.conftest import GatewayFactory, wait_ready
from tests.display.sse_client import SseEvent, SseStream
from tests.fixtures.fake_ledger import LedgerEcho, feed_event, totals_event

pytestmark = pytest.mark.integration


def project_of(event: SseEvent, project_id: str) -> dict[str, object] | None:
    for project in event.data.get("projects", []):
        if project["id"] == project_id:
            return dict(project)
    return None


def raised_in(event: SseEvent, project_id: str) -> int | None:
    project = project_of(event, project_id)
    return int(str(project["raised_fen"])) if project else None


def test_a_confirmed_gift_reaches_a_connected_screen_within_a_second(
    start_gateway: GatewayFactory, echo: LedgerEcho
) -> None:
    echo.set_totals("elderly-meals", 1_000_00, 10).get(timeout=10)
    gateway = start_gateway()
    stream = SseStream(f"{gateway.url}/screen/botanic-garden/events").start()
    snapshot = stream.wait_for(lambda e: e.event == "snapshot")
    assert raised_in(snapshot, "elderly-meals") == 1_000_00

    feed_future, totals_future = echo.gift(
        "elderly-meals", 50_00, shown_name="王**", venue_id="botanic-garden"
    )
    echo.flush()
    feed_future.get(timeout=10)
    totals_future.get(timeout=10)
    acked = time.monotonic()

    update = stream.wait_for(lambda e: e.event == "update" and raised_in(e, "elderly-meals") == 1_050_00)
    gift = stream.wait_for(lambda e: e.event == "update" and bool(e.data["feed"]))
    assert update.received_at - acked < 1.0
    assert gift.received_at - acked < 1.0
    assert gift.data["feed"][0]["name"] == "王**"
    assert gift.data["feed"][0]["amount_fen"] == 50_00
    assert update.data["venue_total_fen"] == 1_050_00
    stream.cut()


def test_a_screen_that_reconnects_with_last_event_id_misses_nothing_and_sees_nothing_twice(
    start_gateway: GatewayFactory, echo: LedgerEcho
) -> None:
    gateway = start_gateway()
    url = f"{gateway.url}/screen/community-centre/events"
    first = SseStream(url).start()
    first.wait_for(lambda e: e.event == "snapshot")
    for amount in range(1, 6):
        echo.gift("veterans-care", amount * 100)
    echo.flush()
    first.wait_for(lambda e: raised_in(e, "veterans-care") == 15_00)
    resume_from = first.last_id
    first.cut()

    for amount in range(6, 21):  # given while the screen was away
        echo.gift("veterans-care", amount * 100)
    echo.flush()
    # Let the gateway publish them before the screen comes back.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        status = httpx.get(f"{gateway.url}/screen/community-centre/status").json()
        if status["venue_total_fen"] == 210_00:
            break
        time.sleep(0.05)

    second = SseStream(url, last_event_id=resume_from).start()
    for amount in range(21, 26):  # and after it came back
        echo.gift("veterans-care", amount * 100)
    echo.flush()
    second.wait_for(lambda e: raised_in(e, "veterans-care") == 325_00)

    assert "snapshot" not in second.kinds()  # a resume, not a fresh start
    seen = [g["amount_fen"] for e in first.data_events() + second.data_events() for g in e.data["feed"]]
    assert sorted(seen) == [a * 100 for a in range(1, 26)]  # every gift, each exactly once
    ids = [int(e.id.split("-")[1]) for e in first.data_events() + second.data_events() if e.id]
    assert ids == sorted(set(ids))  # ids only ever increase
    second.cut()


def test_an_id_from_another_gateway_or_too_old_gets_a_fresh_snapshot(
    start_gateway: GatewayFactory, echo: LedgerEcho
) -> None:
    echo.set_totals("elderly-meals", 7_00, 1).get(timeout=10)
    gateway = start_gateway()
    url = f"{gateway.url}/screen/botanic-garden/events"
    for stale_id in ("0123456789abcdef-3", "garbage", f"{gateway.hub.epoch}-999999"):
        stream = SseStream(url, last_event_id=stale_id).start()
        snapshot = stream.wait_for(lambda e: e.event in ("snapshot", "update"))
        assert snapshot.event == "snapshot", stale_id
        assert raised_in(snapshot, "elderly-meals") == 7_00
        stream.cut()


def test_a_gateway_started_after_10000_updates_shows_the_right_totals(
    kafka_bootstrap: str, topics: Topics, start_gateway: GatewayFactory
) -> None:
    codec = EventCodec()
    producer = make_producer(kafka_bootstrap, linger_ms=20)
    projects = ["elderly-meals", "child-protection", "community-embedded", "veterans-care", "charity-plants"]
    final: dict[str, int] = {}
    for seq in range(1, 10_001):
        project = projects[seq % len(projects)]
        final[project] = seq * 100
        event = totals_event(project, raised_fen=seq * 100, as_of_seq=seq, donations_count=seq)
        producer.send(topics.totals, key=project.encode(), value=codec.encode(event))
    # A republish from a ledger instance that lost the project: older, must be ignored.
    stale = totals_event("elderly-meals", raised_fen=1, as_of_seq=5, donations_count=1)
    producer.send(topics.totals, key=b"elderly-meals", value=codec.encode(stale))
    producer.flush(timeout=30)
    producer.close()

    started = time.monotonic()
    gateway = start_gateway()
    caught_up_s = time.monotonic() - started
    stream = SseStream(f"{gateway.url}/screen/event-hall/events").start()
    snapshot = stream.wait_for(lambda e: e.event == "snapshot")
    assert {p["id"]: p["raised_fen"] for p in snapshot.data["projects"]} == final
    assert snapshot.data["venue_total_fen"] == sum(final.values())
    assert caught_up_s < 20
    stream.cut()


def test_a_gateway_turns_screens_away_until_it_has_caught_up(
    kafka_bootstrap: str, start_gateway: GatewayFactory
) -> None:
    later = Topics(prefix=f"t{uuid.uuid4().hex[:8]}.")  # the ledger has not created them yet
    gateway = start_gateway(wait=False, prefix=later.prefix)
    url = f"{gateway.url}/screen/botanic-garden/events"
    wait_ready_http(gateway.url)
    refused = httpx.get(url, timeout=5)
    assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
    assert httpx.get(f"{gateway.url}/readyz").status_code == 503
    ensure_topics(kafka_bootstrap, later.specs())
    try:
        wait_ready(gateway.url)
        stream = SseStream(url).start()
        assert stream.wait_for(lambda e: e.event == "snapshot").data["projects"] == []
        stream.cut()
    finally:
        delete_topics(kafka_bootstrap, [spec.name for spec in later.specs()])


def wait_ready_http(url: str) -> None:
    """The server answers (ready or not)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/healthz", timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.05)
    raise TimeoutError(url)


def test_past_the_client_cap_screens_get_503_with_retry_after(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(max_clients=2, retry_after_s=7)
    url = f"{gateway.url}/screen/botanic-garden/events"
    streams = [SseStream(url).start() for _ in range(2)]
    for stream in streams:
        stream.wait_for(lambda e: e.event == "snapshot")
    refused = httpx.get(url, timeout=5)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "7"
    for stream in streams:
        stream.cut()


def test_an_unknown_venue_gets_a_clear_error(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway()
    page = httpx.get(f"{gateway.url}/screen/no-such-place")
    assert page.status_code == 404
    assert "未找到场馆屏幕" in page.text and "Unknown venue" in page.text
    assert "no-such-place" in page.text
    assert httpx.get(f"{gateway.url}/screen/no-such-place/events").status_code == 404


def test_a_restarted_gateway_gives_a_snapshot_with_the_same_figures(
    start_gateway: GatewayFactory, echo: LedgerEcho
) -> None:
    for i in range(20):
        echo.gift("child-protection", 10_00 + i, shown_name="李**")
    echo.flush()
    first = start_gateway()
    stream = SseStream(f"{first.url}/screen/event-hall/events").start()
    before = stream.wait_for(lambda e: e.event == "snapshot")
    last_id = stream.last_id
    first.stop()
    deadline = time.monotonic() + 5
    while not stream.ended and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stream.ended  # the gateway ended the stream on its way down: the browser reconnects

    second = start_gateway()
    again = SseStream(f"{second.url}/screen/event-hall/events", last_event_id=last_id).start()
    after = again.wait_for(lambda e: e.event in ("snapshot", "update"))
    assert after.event == "snapshot"  # another epoch: never a resume
    assert after.data["projects"] == before.data["projects"]
    assert [g["id"] for g in after.data["feed"]] == [g["id"] for g in before.data["feed"]]
    again.cut()


def test_a_message_with_a_blocked_word_waits_for_staff_and_is_escaped_text_when_approved(
    start_gateway: GatewayFactory, echo: LedgerEcho, kafka_bootstrap: str, topics: Topics
) -> None:
    gateway = start_gateway()
    stream = SseStream(f"{gateway.url}/screen/botanic-garden/events").start()
    stream.wait_for(lambda e: e.event == "snapshot")
    codec = EventCodec()
    producer = make_producer(kafka_bootstrap)
    fine = feed_event(
        "elderly-meals", amount_fen=20_00, seq=1, shown_name="张**", message="祝<b>长者</b>安康"
    )
    held = feed_event("elderly-meals", amount_fen=30_00, seq=2, shown_name="赵**", message="这是 坏 词")
    for event in (fine, held):
        producer.send(topics.feed, key=b"elderly-meals", value=codec.encode(event))
    producer.flush()
    producer.close()
    stream.wait_for(lambda e: any(g["id"] == held.event_id for g in e.data.get("feed", [])))
    gifts = {g["id"]: g for e in stream.data_events() for g in e.data["feed"]}
    assert gifts[fine.event_id]["message"] == "祝<b>长者</b>安康"  # text; the page uses textContent
    assert gifts[held.event_id]["message"] is None

    staff = {"Authorization": "Bearer staff-secret"}
    assert httpx.get(f"{gateway.url}/staff/moderation").status_code == 401
    queue = httpx.get(f"{gateway.url}/staff/moderation", headers=staff).json()
    assert [m["id"] for m in queue] == [held.event_id]
    approved = httpx.post(f"{gateway.url}/staff/moderation/{held.event_id}/approve", headers=staff)
    assert approved.status_code == 200
    update = stream.wait_for(lambda e: bool(e.data.get("messages")))
    assert update.data["messages"] == [{"id": held.event_id, "message": "这是 坏 词"}]
    stream.cut()


def test_a_decision_on_one_gateway_reaches_the_others_and_survives_a_restart(
    start_gateway: GatewayFactory, kafka_bootstrap: str, topics: Topics
) -> None:
    first = start_gateway(reload_poll_s=0.2)
    second = start_gateway(reload_poll_s=0.2)
    on_second = SseStream(f"{second.url}/screen/botanic-garden/events").start()
    on_second.wait_for(lambda e: e.event == "snapshot")
    held = feed_event("elderly-meals", amount_fen=30_00, seq=1, shown_name="赵**", message="这是 坏 词")
    producer = make_producer(kafka_bootstrap)
    producer.send(topics.feed, key=b"elderly-meals", value=EventCodec().encode(held))
    producer.flush()
    producer.close()
    staff = {"Authorization": "Bearer staff-secret"}

    def queue(gateway: Gateway) -> list[str]:
        return [m["id"] for m in httpx.get(f"{gateway.url}/staff/moderation", headers=staff).json()]

    deadline = time.monotonic() + 20
    while queue(first) != [held.event_id] or queue(second) != [held.event_id]:
        assert time.monotonic() < deadline, "the message was not held by both gateways"
        time.sleep(0.05)
    approved = httpx.post(f"{first.url}/staff/moderation/{held.event_id}/approve", headers=staff)
    assert approved.status_code == 200

    # Approved on the first gateway: shown by the second (as a message for a gift already on
    # screen, or with the gift's own line if that was still to come), gone from both queues.
    def shows_message(event: SseEvent) -> bool:
        messages = {m["id"]: m["message"] for m in event.data.get("messages", [])}
        lines = {g["id"]: g["message"] for g in event.data.get("feed", [])}
        return "这是 坏 词" in (messages.get(held.event_id), lines.get(held.event_id))

    on_second.wait_for(shows_message, timeout=10)
    assert queue(first) == [] and queue(second) == []
    again = httpx.post(f"{second.url}/staff/moderation/{held.event_id}/approve", headers=staff)
    assert again.status_code == 404  # nothing is held any more
    on_second.cut()
    # A gateway started afterwards reads the gift again from the feed: shown, not held.
    third = start_gateway()
    stream = SseStream(f"{third.url}/screen/botanic-garden/events").start()
    snapshot = stream.wait_for(lambda e: e.event == "snapshot")
    gifts = {g["id"]: g for g in snapshot.data["feed"]}
    assert gifts[held.event_id]["message"] == "这是 坏 词"
    assert queue(third) == []
    stream.cut()


def test_heartbeats_keep_an_idle_stream_alive(start_gateway: GatewayFactory) -> None:
    gateway = start_gateway(heartbeat_s=0.2)
    stream = SseStream(f"{gateway.url}/screen/botanic-garden/events").start()
    stream.wait_for(lambda e: e.event == "snapshot")
    first = stream.wait_for(lambda e: e.event == "heartbeat")
    stream.wait_for(lambda e: e.event == "heartbeat" and e is not first, timeout=2)
    assert first.data["live"] is True and first.id is None  # a heartbeat never moves Last-Event-ID
    stream.cut()


def slow_drops(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith('display_clients_dropped_total{reason="slow"}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_stalled_screen_is_dropped_and_the_others_do_not_wait_for_it(
    start_gateway: GatewayFactory, echo: LedgerEcho
) -> None:
    gateway = start_gateway(client_queue=2, coalesce_ms=20)
    dropped_before = slow_drops(gateway.url)
    url = f"{gateway.url}/screen/botanic-garden/events"
    # A screen that connects and then never reads: its socket fills up.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", gateway.port))
    stalled.sendall(b"GET /screen/botanic-garden/events HTTP/1.1\r\nHost: x\r\n\r\n")
    healthy = SseStream(url).start()
    healthy.wait_for(lambda e: e.event == "snapshot")
    long_item = "多肉盆栽" * 150  # big updates fill the stalled socket sooner
    deadline = time.monotonic() + 20
    while slow_drops(gateway.url) == dropped_before:
        assert time.monotonic() < deadline, "the stalled screen was never dropped"
        for _ in range(50):
            echo.gift("charity-plants", 1_00, kind="charity_sale", channel="venue", item=long_item)
        echo.flush()
        time.sleep(0.05)
    echo.gift("elderly-meals", 9_99, shown_name="周**")
    echo.flush()
    acked = time.monotonic()
    last = healthy.wait_for(lambda e: any(g["amount_fen"] == 9_99 for g in e.data.get("feed", [])))
    assert last.received_at - acked < 1.0  # the healthy screen never waited for the stalled one
    stalled.close()
    healthy.cut()
