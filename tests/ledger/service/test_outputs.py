"""Publishing plans: what a plan turns into, and how plans are routed by size."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.service.outputs import (
    OutputPublisher,
    OutputsNotAcknowledged,
    PublishPlan,
    SizeRoutedPublisher,
)
from services.ledger.service.ports import CommittedRow
from services.platform.broken import OutputBroken
from tests.fixtures.outputs import RecordingOutput

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


def committed(seq: int) -> CommittedRow:
    return (
        seq,
        f"e-{seq}",
        "meals",
        "DonationConfirmed",
        "posted",
        "",
        f'{{"seq":{seq}}}',
        "0" * 64,
        f"{seq:064x}",
        f"charity.donations/0/{seq}",
    )


def plan_of(records: int, first_seq: int = 1) -> PublishPlan:
    """A plan of `records` records: journal record and outcome pairs, and a total if odd."""
    plan = PublishPlan(now=NOW, entries=[committed(first_seq + i) for i in range(records // 2)])
    if records % 2:
        plan.totals.append(TOTALS)
    return plan


TOTALS = ev.TotalsUpdated(
    event_id=ev.derived_id("totals-1", "meals"),
    occurred_at=NOW,
    actor="ledger",
    project_id="meals",
    name="乐龄助餐",
    name_en=None,
    status="fundraising",
    currency="CNY",
    goal_fen=1,
    raised_fen=1,
    gross_fen=1,
    fees_fen=0,
    offline_fen=0,
    donations_count=1,
    refunded_fen=0,
    disbursed_fen=0,
    available_fen=1,
    as_of_seq=1,
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


def test_committed_entries_become_journal_records_and_outcomes_with_derived_ids() -> None:
    out = RecordingOutput()
    publisher = OutputPublisher(out, Topics(""))
    publisher.publish(plan_of(4, first_seq=7))
    outcomes = out.events(Topics("").outcomes)
    assert [(o.event_id, o.seq, o.occurred_at) for o in outcomes] == [  # type: ignore[attr-defined]
        (ev.derived_id("outcome", f"e-{seq}"), seq, NOW) for seq in (7, 8)
    ]
    journal = out.events(Topics("").journal)
    assert [
        (j.event_id, j.seq, j.entry_id, j.canonical, j.entry_hash)  # type: ignore[attr-defined]
        for j in journal
    ] == [(ev.derived_id("journal", str(s)), s, f"e-{s}", f'{{"seq":{s}}}', f"{s:064x}") for s in (7, 8)]
    assert out.flushes == 1  # in-process publishing waits for the broker
    assert publisher.acknowledged == 8


class _FlakyOutput(RecordingOutput):
    """Flushes fail while `failing` is set, as when the broker does not answer."""

    def __init__(self) -> None:
        super().__init__()
        self.failing: Exception | None = None

    def flush(self, timeout: float = 30.0) -> None:
        super().flush(timeout)
        if self.failing is not None:
            raise self.failing


def failures() -> float:
    return REGISTRY.get_sample_value("ledger_publish_failures_total") or 0.0


def test_a_plan_the_broker_did_not_acknowledge_is_raised_and_holds_the_acknowledged_seq() -> None:
    out = _FlakyOutput()
    publisher = OutputPublisher(out, Topics(""))
    publisher.publish(plan_of(2, first_seq=1))
    out.failing = TimeoutError("3 records not acknowledged")
    before = failures()
    with pytest.raises(OutputsNotAcknowledged, match="3 records not acknowledged"):
        publisher.publish(plan_of(2, first_seq=2))
    assert failures() == before + 1
    out.failing = None
    publisher.publish(plan_of(2, first_seq=3))  # acknowledged, but seq 2 was not: no gap is papered over
    assert publisher.acknowledged == 1
    publisher.acknowledged = 3  # what a catch-up from the stored watermark sets
    publisher.publish(plan_of(2, first_seq=4))
    assert publisher.acknowledged == 4


def test_a_producer_broken_for_good_still_stops_the_ledger() -> None:
    out = _FlakyOutput()
    out.failing = OutputBroken("fenced")
    routed = SizeRoutedPublisher(OutputPublisher(out, Topics("")), Log().publisher("p"), 10)
    with pytest.raises(OutputBroken, match="fenced"):
        routed.publish(plan_of(3))
