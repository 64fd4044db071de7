"""Leaving suspense: money a project could not take, redirected to an open project or refunded.

Money lands in `suspense:<project>` when it arrives for a project that is not
fundraising (or in another currency). Getting it out takes two people: one
requests (SuspenseResolutionRequested), a different one approves
(SuspenseResolutionApproved), and only the approval moves money. Both checks,
the amount against the suspense balance and the target's being open, are made
again at approval: the balance or the target may have changed in between.

`decide` is the rule (called by book.decide); `apply` the projection (called by
projector.apply_entry). A redirection is the one entry that changes a second
project, the target: `other_project` names it, so the store, rebuild and
verify keep that project with the entry.
"""

from __future__ import annotations

from collections.abc import Callable

import services.contracts.events as ev
from services.ledger.domain import accounts as acc
from services.ledger.domain import journal as j
from services.ledger.domain.journal import JournalEntry, Posting, transfer
from services.ledger.domain.money import Money
from services.ledger.domain.state import (
    ProjectStatus,
    ProjectTotals,
    ResolutionStatus,
    SuspenseResolution,
)
from services.ledger.domain.view import LedgerView

REDIRECT, REFUND = "redirect", "refund"
ACTIONS = frozenset({REDIRECT, REFUND})
KINDS = frozenset({"SuspenseResolutionRequested", "SuspenseResolutionApproved", "SuspenseResolutionRejected"})

ResolutionEvent = (
    ev.SuspenseResolutionRequested | ev.SuspenseResolutionApproved | ev.SuspenseResolutionRejected
)


def decide(
    event: ResolutionEvent, project: ProjectTotals, view: LedgerView, make: Callable[..., JournalEntry]
) -> JournalEntry:
    """The ledger's decision on one resolution event of `project` (whose suspense it is)."""
    if isinstance(event, ev.SuspenseResolutionRequested):
        if event.resolution_id in view.resolutions:
            return make(j.REJECTED, f"suspense resolution {event.resolution_id} already exists")
        refusal = _why_not(
            event.action, event.amount_fen, event.currency, event.target_project_id, project, view
        )
        if not refusal and event.donation_id is not None:
            refusal = _why_not_refund_of(event, view)
        if refusal:
            return make(j.REJECTED, refusal)
        return make(j.RECORDED)
    resolution = view.resolutions.get(event.resolution_id)
    if resolution is None or resolution.project_id != event.project_id:
        return make(j.REJECTED, f"unknown suspense resolution {event.resolution_id} for this project")
    if resolution.status != ResolutionStatus.REQUESTED:
        return make(j.REJECTED, f"suspense resolution is already {resolution.status}")
    if isinstance(event, ev.SuspenseResolutionRejected):
        return make(j.RECORDED)
    if event.actor == resolution.requested_by:
        return make(j.REJECTED, "the requester may not approve their own suspense resolution")
    r = resolution
    refusal = _why_not(r.action, r.amount_fen, r.currency, r.target_project_id, project, view)
    if refusal:
        return make(j.REJECTED, refusal)
    target = acc.project_fund(r.target_project_id) if r.target_project_id else acc.REFUNDS
    legs: tuple[Posting, ...] = transfer(acc.suspense(r.project_id), target, Money(r.amount_fen, r.currency))
    # What moved, in the entry itself: a rebuild and an auditor read it without the request.
    return make(
        j.POSTED,
        "",
        legs,
        action=r.action,
        amount_fen=r.amount_fen,
        currency=r.currency,
        target_project_id=r.target_project_id,
        donation_id=r.donation_id,
        requested_by=r.requested_by,
    )


def _why_not(
    action: str,
    amount_fen: int,
    currency: str,
    target_id: str | None,
    project: ProjectTotals,
    view: LedgerView,
) -> str:
    if action not in ACTIONS:
        return f"unknown action {action!r}: redirect or refund"
    if currency != project.currency:
        return f"{currency} from a {project.currency} project's suspense"
    if amount_fen > project.suspense_fen:
        return f"{amount_fen} fen exceeds the {project.suspense_fen} fen in suspense"
    if action == REFUND:
        return "a refund names no target project" if target_id else ""
    target = view.projects.get(target_id or "")
    if target is None:
        return f"unknown target project {target_id}"
    if target.project_id == project.project_id:
        return "a project's suspense cannot be redirected to the project itself"
    if target.status != ProjectStatus.FUNDRAISING:
        return f"target project {target.project_id} is {target.status}, not fundraising"
    if target.currency != currency:
        return f"target project {target.project_id} takes {target.currency}, not {currency}"
    return ""


def _why_not_refund_of(event: ev.SuspenseResolutionRequested, view: LedgerView) -> str:
    donation = view.donations.get(event.donation_id or "")
    if donation is None or donation.project_id != event.project_id or not donation.to_suspense:
        return f"donation {event.donation_id} is not a gift held in this project's suspense"
    if event.amount_fen > donation.refundable_fen:
        return f"{event.amount_fen} fen exceeds the {donation.refundable_fen} fen still refundable"
    return ""


def apply(entry: JournalEntry, view: LedgerView, project: ProjectTotals | None) -> None:
    """Project one decided (not rejected) resolution entry."""
    b = entry.body
    if entry.kind == "SuspenseResolutionRequested":
        view.resolutions[b["resolution_id"]] = SuspenseResolution(
            resolution_id=b["resolution_id"],
            project_id=entry.project_id,
            action=b["action"],
            currency=b["currency"],
            amount_fen=b["amount_fen"],
            requested_by=b["actor"],
            target_project_id=b.get("target_project_id"),
            donation_id=b.get("donation_id"),
        )
        view.dirty_resolutions.add(b["resolution_id"])
        return
    resolution = view.resolutions[b["resolution_id"]]
    view.dirty_resolutions.add(resolution.resolution_id)
    if entry.kind == "SuspenseResolutionRejected":
        resolution.status = ResolutionStatus.REJECTED
        return
    resolution.status = ResolutionStatus.APPLIED
    resolution.approved_by = b["actor"]
    amount = b["amount_fen"]
    if project is not None:
        project.suspense_fen -= amount
    target = view.projects.get(b.get("target_project_id") or "")
    if target is not None:
        target.redirected_in_fen += amount
        target.fund_fen += amount
        target.by_channel["redirected"] = target.by_channel.get("redirected", 0) + amount
        view.dirty_projects.add(target.project_id)
    donation = view.donations.get(b.get("donation_id") or "")
    if donation is not None:
        donation.refunded_fen += amount
        view.dirty_donations.add(donation.donation_id)


def other_project(kind: str, decision: str, body: dict[str, object]) -> str | None:
    """The second project an entry changed: the target of an applied redirection."""
    if kind == "SuspenseResolutionApproved" and decision == j.POSTED:
        target = body.get("target_project_id")
        return target if isinstance(target, str) else None
    return None
