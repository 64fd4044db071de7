"""The benchmark's input is valid, distinct and the same for the same seed."""

from __future__ import annotations

from datetime import UTC, datetime

from bench import workload
from services.contracts import events as ev
from services.contracts.codec import EventCodec
from services.contracts.validation import problems_with

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def test_projects_are_registered_approved_and_opened_in_order() -> None:
    ids = workload.project_ids(3)
    setup = workload.opened_projects(ids, NOW)
    assert [type(e) for e in setup[:3]] == [ev.ProjectRegistered, ev.ProjectApproved, ev.FundraisingOpened]
    assert [e.project_id for e in setup] == [p for p in ids for _ in range(3)]
    assert all(problems_with(e) == [] for e in setup)


def test_gifts_are_valid_distinct_and_reproducible() -> None:
    ids = workload.project_ids(10)
    gifts = list(workload.confirmed_gifts(500, ids, NOW))
    assert gifts == list(workload.confirmed_gifts(500, ids, NOW))
    assert len({g.event_id for g in gifts}) == len({g.donation_id for g in gifts}) == 500
    assert {g.project_id for g in gifts} <= set(ids)
    assert all(problems_with(g) == [] for g in gifts)
    codec = EventCodec()
    assert codec.decode(codec.encode(gifts[0])) == gifts[0]
