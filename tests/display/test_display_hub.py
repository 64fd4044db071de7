"""The hub: readiness, capacity, resumes by epoch, gifts that wait for their totals, reconfiguration."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from services.display.channel import ChannelLimits
from services.display.decisions import APPROVED
from services.display.hub import AtCapacity, Hub, NotReady, UnknownVenue, new_epoch, parse_event_id
from services.display.moderation import ModerationMode, ModerationPolicy
from services.display.venues import Venue, VenueCatalogue
from tests.display.fake_screen import FakeScreen, parse_frames
from tests.fixtures.fake_ledger import feed_event, totals_event

GARDEN = Venue("garden", "花园", "Garden", ("elderly-meals",))
HALL = Venue("hall", "大厅", "Hall", ("elderly-meals", "veterans-care"))


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


def hub(**kw: object) -> Hub:
    return Hub(VenueCatalogue({"garden": GARDEN, "hall": HALL}), limits=ChannelLimits(interval_s=0), **kw)  # type: ignore[arg-type]


def messages(chunk: bytes) -> list[tuple[str, Any]]:
    return [(event, data) for _, event, data in parse_frames(chunk)]


def test_event_ids_parse_and_epochs_differ() -> None:
    assert parse_event_id("18c3a9f0b2e1a3f-42") == ("18c3a9f0b2e1a3f", 42)
    assert parse_event_id("nonsense") is None
    assert parse_event_id(None) is None
    assert new_epoch() != new_epoch()


def test_screens_wait_until_the_state_has_caught_up() -> None:
    async def body() -> None:
        h = hub()
        with pytest.raises(UnknownVenue):
            h.open_stream("nowhere", None)
        with pytest.raises(NotReady):
            h.open_stream("garden", None)
        h.ingest([totals_event("elderly-meals", raised_fen=500, as_of_seq=1)])
        h.mark_caught_up()
        _, first = h.open_stream("garden", None)
        kinds = messages(first)
        assert [k for k, _ in kinds] == ["snapshot", "heartbeat"]
        assert kinds[0][1]["venue_total_fen"] == 500

    run(body)


def test_past_the_cap_a_screen_is_turned_away() -> None:
    async def body() -> None:
        h = hub(max_clients=2)
        h.mark_caught_up()
        h.open_stream("garden", None)
        client, _ = h.open_stream("hall", None)
        with pytest.raises(AtCapacity):
            h.open_stream("garden", None)
        h.close_stream(client)
        h.open_stream("garden", None)

    run(body)


def test_only_an_id_of_this_epoch_resumes() -> None:
    async def body() -> None:
        h = hub()
        h.mark_caught_up()
        h.ingest([totals_event("elderly-meals", raised_fen=1, as_of_seq=1)])
        h.channels["garden"].flush()
        _, same = h.open_stream("garden", f"{h.epoch}-0")
        _, other = h.open_stream("garden", "0000000000aa-0")
        assert messages(same)[0][0] == "update"
        assert messages(other)[0][0] == "snapshot"

    run(body)


def test_a_gift_waits_for_the_total_that_counts_it() -> None:
    async def body() -> None:
        h = hub()
        h.mark_caught_up()
        screen = FakeScreen(h.open_stream("garden", None)[0])
        h.ingest([feed_event("elderly-meals", amount_fen=50, seq=7)])
        await asyncio.sleep(0.01)
        assert screen.frames() == []  # no gift next to a total that lacks it
        h.ingest([totals_event("elderly-meals", raised_fen=50, as_of_seq=7)])
        await asyncio.sleep(0.01)
        ((_, kind, update),) = screen.frames()
        assert kind == "update"
        assert update["venue_total_fen"] == 50 and len(update["feed"]) == 1  # type: ignore[arg-type]

    run(body)


def test_a_message_approved_while_its_gift_waits_for_its_total_goes_out_with_the_gift() -> None:
    async def body() -> None:
        garden = Venue("garden", "花园", "Garden", ("elderly-meals",), show_messages=True)
        h = Hub(
            VenueCatalogue({"garden": garden}, ModerationPolicy(mode=ModerationMode.HOLD)),
            limits=ChannelLimits(interval_s=0),
        )
        h.mark_caught_up()
        screen = FakeScreen(h.open_stream("garden", None)[0])
        gift = feed_event("elderly-meals", amount_fen=50, seq=7, message="加油")
        h.ingest([gift])
        h.decide(gift.event_id, APPROVED)  # decided on another gateway, say
        h.ingest([totals_event("elderly-meals", raised_fen=50, as_of_seq=7)])
        await asyncio.sleep(0.01)
        ((_, _, update),) = screen.frames()
        assert [line["message"] for line in update["feed"]] == ["加油"]  # type: ignore[index]

    run(body)


def test_a_gift_whose_total_came_first_goes_out_with_that_total_again() -> None:
    async def body() -> None:
        h = hub()
        h.mark_caught_up()
        screen = FakeScreen(h.open_stream("garden", None)[0])
        # The totals topic was read first and its update is on the screen already.
        h.ingest([totals_event("elderly-meals", raised_fen=50, as_of_seq=7)])
        h.channels["garden"].flush()
        h.ingest([feed_event("elderly-meals", amount_fen=50, seq=7)])
        h.channels["garden"].flush()
        (_, _, total_alone), (_, _, with_gift) = screen.frames()
        assert total_alone["feed"] == []  # type: ignore[index]
        assert len(with_gift["feed"]) == 1  # type: ignore[arg-type]
        # The message that lists the gift carries the total that counts it.
        assert [(p["id"], p["raised_fen"]) for p in with_gift["projects"]] == [("elderly-meals", 50)]  # type: ignore[index]

    run(body)


def test_a_gift_whose_total_never_comes_is_shown_after_a_second() -> None:
    async def body() -> None:
        h = hub()
        h.mark_caught_up()
        screen = FakeScreen(h.open_stream("garden", None)[0])
        h.ingest([feed_event("elderly-meals", amount_fen=50, seq=7)])
        await asyncio.sleep(1.1)
        ((_, _, update),) = screen.frames()
        assert len(update["feed"]) == 1  # type: ignore[arg-type]

    run(body)


def test_a_changed_venue_reloads_its_screens_and_leaves_the_others_alone() -> None:
    async def body() -> None:
        h = hub()
        h.mark_caught_up()
        garden = FakeScreen(h.open_stream("garden", None)[0])
        hall = FakeScreen(h.open_stream("hall", None)[0])
        changed = Venue("garden", "新花园", "Garden", ("elderly-meals",))
        h.reconfigure(VenueCatalogue({"garden": changed, "hall": HALL}))
        assert [kind for _, kind, _ in garden.frames()] == ["reload"]
        assert await garden.finished is True
        assert not hall.client.closed
        assert h.clients == 1

    run(body)


def test_shutdown_ends_every_stream() -> None:
    async def body() -> None:
        h = hub()
        h.mark_caught_up()
        screens = [FakeScreen(h.open_stream("garden", None)[0]) for _ in range(3)]
        h.end_all("shutdown")
        for screen in screens:
            assert await screen.finished is True
        assert h.clients == 0

    run(body)


def test_screens_hear_at_once_when_the_ledger_stops_and_starts_answering() -> None:
    async def body() -> None:
        h = hub()
        h.mark_caught_up()
        screen = FakeScreen(h.open_stream("garden", None)[0])
        h.set_broker_reachable(False)
        h.set_broker_reachable(False)  # no news, no message
        h.set_broker_reachable(True)
        beats = [data["live"] for _, kind, data in screen.frames() if kind == "heartbeat"]
        assert beats == [False, True]

    run(body)
