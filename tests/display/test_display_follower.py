"""The follower without a broker: it keeps trying, and says so in time for the screens."""

from __future__ import annotations

import threading

from services.contracts.topics import Topics
from services.display.follower import Follower
from tests.fixtures.kafka import free_ports


def test_without_a_broker_the_follower_reports_it_and_keeps_trying() -> None:
    reports: list[bool] = []
    reported = threading.Event()

    def status(ok: bool) -> None:
        reports.append(ok)
        reported.set()

    caught_up = threading.Event()
    follower = Follower(
        f"127.0.0.1:{free_ports(1)[0]}",  # nothing listens there
        Topics("nowhere."),
        deliver=lambda events: None,
        caught_up=caught_up.set,
        broker_status=status,
        stale_after_s=0,
    )
    follower.start()
    try:
        assert reported.wait(15)
        assert reports[0] is False
        assert not caught_up.is_set()  # never ready on no data: screens are turned away, not misled
    finally:
        follower.stop(timeout=15)
