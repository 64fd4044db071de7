"""Publishing plans: what a plan turns into, and how plans are routed by size."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.service.outputs import OutputPublisher, PublishPlan, SizeRoutedPublisher
from services.platform.broken import OutputBroken
from tests.fixtures.outputs import RecordingOutput

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def plan_of(outcomes: int) -> PublishPlan:
    return PublishPlan(
        now=NOW, outcomes=[(f"e-{i}", "meals", "DonationConfirmed", "posted", "", i) for i in range(outcomes)]
    )


class Log:
    """Fake publishers that write what is asked of them into one shared list."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int]] = []

    def publisher(self, name: str) -> _Named:
        return _Named(name, self.calls)


class _Named:
    def __init__(self, name: str, calls: list[tuple[str, str, int]]) -> None:
        self.name, self.calls = name, calls

    def publish(self, plan: PublishPlan) -> None:
        self.calls.append((self.name, "publish", len(plan)))

    def drain(self) -> None:
        self.calls.append((self.name, "drain", 0))


def test_small_plans_wait_for_large_ones_under_way_then_go_inline() -> None:
    log = Log()
    routed = SizeRoutedPublisher(log.publisher("inline"), log.publisher("process"), large_from=10)
    routed.publish(plan_of(10))
    routed.publish(plan_of(3))
    routed.publish(plan_of(25))
    assert log.calls == [
        ("process", "publish", 10),
        ("process", "drain", 0),  # the large plan is on the broker before the small one is sent
        ("inline", "publish", 3),
        ("process", "publish", 25),
    ]


def test_an_outcome_plan_becomes_outcome_records_with_derived_ids() -> None:
    out = RecordingOutput()
    OutputPublisher(out, Topics("")).publish(plan_of(2))
    outcomes = out.events(Topics("").outcomes)
    assert [(o.event_id, o.seq, o.occurred_at) for o in outcomes] == [  # type: ignore[attr-defined]
        (ev.derived_id("outcome", f"e-{i}"), i, NOW) for i in range(2)
    ]
    assert out.flushes == 1  # in-process publishing waits for the broker


class _Failing:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def publish(self, plan: PublishPlan) -> None:
        raise self.error

    def drain(self) -> None:
        pass


def failures() -> float:
    return REGISTRY.get_sample_value("ledger_publish_failures_total") or 0.0


def test_a_small_plan_the_broker_did_not_acknowledge_is_counted_not_raised() -> None:
    routed = SizeRoutedPublisher(
        _Failing(TimeoutError("3 records not acknowledged")), Log().publisher("p"), 10
    )
    before = failures()
    routed.publish(plan_of(3))  # the batch is committed: nothing to retry
    assert failures() == before + 1


def test_a_producer_broken_for_good_still_stops_the_ledger() -> None:
    routed = SizeRoutedPublisher(_Failing(OutputBroken("fenced")), Log().publisher("p"), 10)
    with pytest.raises(OutputBroken, match="fenced"):
        routed.publish(plan_of(3))
