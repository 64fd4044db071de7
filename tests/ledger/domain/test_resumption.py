"""Suspending and resuming: a resumed project goes on in the state it was suspended from."""

from __future__ import annotations

import pytest

from services.contracts import events as ev
from services.ledger.domain import journal as j
from services.ledger.domain.book import body_of
from services.ledger.domain.view import LedgerView
from tests.fixtures import factories as f
from tests.ledger.domain.test_book import run


def suspended_then_resumed(*before: ev.Event) -> tuple[LedgerView, list[j.JournalEntry]]:
    view = LedgerView()
    entries = run(
        view,
        *before,
        f.lifecycle(ev.ProjectSuspended, "p1", reason="审计 audit"),
        f.lifecycle(ev.ProjectResumed, "p1", reason="审计通过 audit passed"),
    )
    return view, entries


@pytest.mark.parametrize(
    ("before", "state"),
    [
        ([f.registered("p1")], "registered"),
        ([f.registered("p1"), f.lifecycle(ev.ProjectApproved, "p1")], "approved"),
        (f.opened_project("p1"), "fundraising"),
        ([*f.opened_project("p1"), f.lifecycle(ev.FundraisingClosed, "p1")], "fundraising_closed"),
    ],
)
def test_a_resumed_project_is_back_in_the_state_it_was_suspended_from(
    before: list[ev.Event], state: str
) -> None:
    view, entries = suspended_then_resumed(*before)
    suspended, resumed = entries[-2:]
    assert (suspended.decision, suspended.body["to"]) == (j.RECORDED, "suspended")
    assert (resumed.decision, resumed.body["to"]) == (j.RECORDED, state)
    assert resumed.body["reason"] == "审计通过 audit passed" and resumed.body["actor"] == "staff-1"
    project = view.projects["p1"]
    assert (project.status, project.resumes_to) == (state, None)


def test_only_a_suspended_project_resumes() -> None:
    view = LedgerView()
    entries = run(view, *f.opened_project("p1"), f.lifecycle(ev.ProjectResumed, "p1", reason="x"))
    assert entries[-1].decision == j.REJECTED
    assert entries[-1].reason == "ProjectResumed is not allowed in state fundraising"
    assert view.projects["p1"].status == "fundraising"
    unknown = run(view, f.lifecycle(ev.ProjectResumed, "nope", reason="x"))[-1]
    assert (unknown.decision, unknown.reason) == (j.REJECTED, "unknown project nope")


def state(view: LedgerView) -> tuple[str, str | None]:
    return view.projects["p1"].status, view.projects["p1"].resumes_to


def test_a_suspended_project_remembers_its_state_until_it_leaves_suspension() -> None:
    view = LedgerView()
    run(view, *f.opened_project("p1"), f.lifecycle(ev.ProjectSuspended, "p1"))
    assert state(view) == ("suspended", "fundraising")
    # A second suspension is refused and does not overwrite what it was suspended from.
    again = run(view, f.lifecycle(ev.ProjectSuspended, "p1"))[-1]
    assert again.decision == j.REJECTED and state(view) == ("suspended", "fundraising")
    # Closing straight from suspension forgets it too.
    run(view, f.lifecycle(ev.ProjectClosed, "p1", leftover_disposition="none"))
    assert state(view) == ("closed", None)
    late = run(view, f.lifecycle(ev.ProjectResumed, "p1", reason="x"))[-1]
    assert late.reason == "ProjectResumed is not allowed in state closed"


def test_a_suspension_not_remembered_is_refused_rather_than_guessed() -> None:
    view = LedgerView()
    run(view, *f.opened_project("p1"), f.lifecycle(ev.ProjectSuspended, "p1"))
    view.projects["p1"].resumes_to = None  # as a projection written before resumes_to existed
    refused = run(view, f.lifecycle(ev.ProjectResumed, "p1", reason="x"))[-1]
    assert (refused.decision, refused.reason) == (
        j.REJECTED,
        "the state the project was suspended from is not known",
    )


def test_the_plans_area_and_filing_number_are_kept_and_absent_ones_leave_the_body_as_before() -> None:
    plain = f.registered("p1")
    assert "area" not in body_of(plain) and "filing_no" not in body_of(plain)
    filed = f.registered("p2", area="江苏省苏州市 Suzhou", filing_no="53320500MJ0000000X-2026-001")
    view = LedgerView()
    run(view, plain, filed)
    plan = view.projects["p2"].plan
    assert (plan["area"], plan["filing_no"]) == ("江苏省苏州市 Suzhou", "53320500MJ0000000X-2026-001")
    assert "area" not in view.projects["p1"].plan
