"""Leaving suspense with four eyes, on the pure domain: no Kafka, no database."""

from __future__ import annotations

import uuid
from typing import Any

from services.contracts import events as ev
from services.ledger.domain import journal as j
from services.ledger.domain.state import ResolutionStatus
from services.ledger.domain.suspense import other_project
from services.ledger.domain.view import LedgerView
from tests.fixtures import factories as f
from tests.ledger.domain.test_book import balances, run


def _common(project_id: str, actor: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": ev.utc_now_ms(),
        "actor": actor,
        "project_id": project_id,
    }


def requested(project_id: str, actor: str = "fin-1", **kw: Any) -> ev.SuspenseResolutionRequested:
    fields: dict[str, Any] = {
        "resolution_id": f"r-{uuid.uuid4().hex[:12]}",
        "action": "redirect",
        "amount_fen": 4970,
        "currency": "CNY",
        "target_project_id": "open",
        "reason": "gift arrived after fundraising closed",
    }
    fields.update(kw)
    return ev.SuspenseResolutionRequested(**_common(project_id, actor), **fields)


def approved(project_id: str, resolution_id: str, actor: str = "fin-2") -> ev.SuspenseResolutionApproved:
    return ev.SuspenseResolutionApproved(**_common(project_id, actor), resolution_id=resolution_id)


def rejected(project_id: str, resolution_id: str, actor: str = "fin-2") -> ev.SuspenseResolutionRejected:
    return ev.SuspenseResolutionRejected(
        **_common(project_id, actor), resolution_id=resolution_id, reason="not ours to move"
    )


def with_suspense() -> tuple[LedgerView, str]:
    """'closed' holds a ¥49.70 gift in suspense (it arrived before fundraising opened); 'open' is open."""
    view = LedgerView()
    gift = f.confirmed("closed", gross_fen=5000, fee_fen=30)
    entries = run(view, f.registered("closed"), *f.opened_project("open"), gift)
    assert entries[-1].decision == j.SUSPENSE
    assert view.projects["closed"].suspense_fen == 4970
    return view, gift.donation_id


def test_a_redirection_moves_the_money_only_when_a_second_person_approves() -> None:
    view, _ = with_suspense()
    request = requested("closed")
    asked, by_requester, by_other = run(
        view,
        request,
        approved("closed", request.resolution_id, actor="fin-1"),
        approved("closed", request.resolution_id),
    )
    assert asked.decision == j.RECORDED and not asked.postings
    assert by_requester.decision == j.REJECTED
    assert by_requester.reason == "the requester may not approve their own suspense resolution"
    assert by_other.decision == j.POSTED
    assert balances([by_other]) == {"suspense:closed": -4970, "project:open:fund": 4970}
    source, target = view.projects["closed"], view.projects["open"]
    assert source.suspense_fen == 0
    assert (target.redirected_in_fen, target.fund_fen, target.raised_fen) == (4970, 4970, 4970)
    assert view.resolutions[request.resolution_id].status == ResolutionStatus.APPLIED
    assert view.resolutions[request.resolution_id].approved_by == "fin-2"
    assert other_project(by_other.kind, by_other.decision, by_other.body) == "open"


def test_an_applied_resolution_is_not_applied_twice() -> None:
    view, _ = with_suspense()
    request = requested("closed", amount_fen=1000)
    *_, again = run(
        view,
        request,
        approved("closed", request.resolution_id),
        approved("closed", request.resolution_id, "fin-3"),
    )
    assert again.decision == j.REJECTED and again.reason == "suspense resolution is already applied"
    assert view.projects["closed"].suspense_fen == 3970


def test_requests_beyond_the_suspense_balance_or_to_a_closed_target_are_refused() -> None:
    view, _ = with_suspense()
    too_much, to_itself, to_registered, unknown = run(
        view,
        requested("closed", amount_fen=4971),
        requested("closed", target_project_id="closed"),
        requested("closed", target_project_id="closed-too"),
        requested("closed", target_project_id="nowhere"),
    )
    assert too_much.reason == "4971 fen exceeds the 4970 fen in suspense"
    assert to_itself.reason == "a project's suspense cannot be redirected to the project itself"
    assert to_registered.reason == "unknown target project closed-too"
    assert unknown.decision == j.REJECTED
    assert not view.resolutions


def test_the_balance_is_checked_again_at_approval() -> None:
    view, _ = with_suspense()
    first, second = requested("closed", amount_fen=3000), requested("closed", amount_fen=3000)
    *_, one, two = run(
        view, first, second, approved("closed", first.resolution_id), approved("closed", second.resolution_id)
    )
    assert one.decision == j.POSTED
    assert two.decision == j.REJECTED and two.reason == "3000 fen exceeds the 1970 fen in suspense"


def test_a_target_that_stopped_fundraising_refuses_the_approval() -> None:
    view, _ = with_suspense()
    request = requested("closed")
    closing = f.lifecycle(ev.FundraisingClosed, "open", reason="goal reached")
    *_, decision = run(view, request, closing, approved("closed", request.resolution_id))
    assert decision.decision == j.REJECTED
    assert decision.reason == "target project open is fundraising_closed, not fundraising"


def test_a_refund_of_a_gift_in_suspense_goes_to_refunds_and_counts_against_the_gift() -> None:
    view, donation_id = with_suspense()
    request = requested(
        "closed", action="refund", target_project_id=None, donation_id=donation_id, amount_fen=2000
    )
    too_much = requested(
        "closed", action="refund", target_project_id=None, donation_id=donation_id, amount_fen=5001
    )
    asked, refused, applied = run(view, request, too_much, approved("closed", request.resolution_id))
    assert asked.decision == j.RECORDED
    assert refused.decision == j.REJECTED
    assert applied.decision == j.POSTED
    assert balances([applied]) == {"suspense:closed": -2000, "refunds": 2000}
    assert view.donations[donation_id].refunded_fen == 2000
    assert view.projects["closed"].suspense_fen == 2970
    assert other_project(applied.kind, applied.decision, applied.body) is None


def test_offline_takings_in_suspense_can_be_redirected() -> None:
    view = LedgerView()
    run(view, f.registered("closed"), *f.opened_project("open"), f.offline("closed", amount_fen=1200))
    request = requested("closed", amount_fen=1200)
    *_, applied = run(view, request, approved("closed", request.resolution_id))
    assert applied.decision == j.POSTED
    assert view.projects["open"].raised_fen == 1200


def test_a_rejected_request_leaves_the_money_and_cannot_be_approved() -> None:
    view, _ = with_suspense()
    request = requested("closed")
    _, turned_down, late = run(
        view, request, rejected("closed", request.resolution_id), approved("closed", request.resolution_id)
    )
    assert turned_down.decision == j.RECORDED
    assert late.decision == j.REJECTED and late.reason == "suspense resolution is already rejected"
    assert view.projects["closed"].suspense_fen == 4970


def test_a_resolution_of_another_project_is_unknown_here() -> None:
    view, _ = with_suspense()
    request = requested("closed")
    *_, elsewhere = run(view, request, approved("open", request.resolution_id))
    assert elsewhere.decision == j.REJECTED
    assert elsewhere.reason == f"unknown suspense resolution {request.resolution_id} for this project"
