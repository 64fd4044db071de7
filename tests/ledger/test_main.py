"""The ledger's tree-head signing loop: failures are retried, a broken producer stops the ledger."""

from __future__ import annotations

import threading

from services.ledger.main import sign_tree_heads
from services.platform.broken import OutputBroken


class FlakySigner:
    def __init__(self, failures: list[Exception], stop: threading.Event, calls_before_stop: int) -> None:
        self.failures = failures
        self.stop = stop
        self.calls = 0
        self.calls_before_stop = calls_before_stop

    def publish_if_grown(self) -> None:
        self.calls += 1
        if self.calls >= self.calls_before_stop:
            self.stop.set()
        if self.failures:
            raise self.failures.pop(0)


def test_a_failed_tree_head_is_retried_at_the_next_interval() -> None:
    stop = threading.Event()
    signer = FlakySigner([RuntimeError("database busy")], stop, calls_before_stop=3)
    broken: list[OutputBroken] = []
    sign_tree_heads(signer, stop, 0.001, broken)  # type: ignore[arg-type]
    assert signer.calls == 3 and broken == []


def test_a_producer_broken_for_good_stops_the_ledger_and_says_why() -> None:
    stop = threading.Event()
    fenced = OutputBroken("producer fenced")
    signer = FlakySigner([fenced], stop, calls_before_stop=1000)
    broken: list[OutputBroken] = []
    sign_tree_heads(signer, stop, 0.001, broken)  # type: ignore[arg-type]
    assert signer.calls == 1 and broken == [fenced] and stop.is_set()
