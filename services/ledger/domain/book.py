"""The ledger's rules: turn one event into one decided journal entry.

`decide` reads the view, never writes it; the caller then hands the entry to
`projector.apply_entry`. Money that arrived is a fact and is always booked
(to suspense when the project cannot take it); anything that depends on
balances or on the project's state is decided here, once, and recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import services.contracts.events as ev
from services.ledger.domain import accounts as acc
from services.ledger.domain import journal as j
from services.ledger.domain import suspense
from services.ledger.domain.journal import JournalEntry, Posting, transfer
from services.ledger.domain.money import Money
from services.ledger.domain.state import (
    OPEN_STATES,
    DisbursementStatus,
    ProjectStatus,
    ProjectTotals,
)
from services.ledger.domain.view import LedgerView

# Personal data never enters the immutable journal (PIPL): names and messages
# live in the erasable donor store; the journal keeps only the opaque donor_ref.
PERSONAL_FIELDS = frozenset({"display_name", "message"})
# Optional fields added to an event after journals already held it: left out of
# the body while null, so the entry of an event without one is byte for byte the
# entry it always was, and existing journals verify and rebuild unchanged. (Not
# ProjectRegistered's name_en: its bodies have carried it, null or not, from the start.)
LATER_OPTIONAL_FIELDS = frozenset(
    {"receipt_no", "area", "filing_no", "planned_on", "document_sha256s", "comment"}
)

S = ProjectStatus
# Which lifecycle event may move a project from which states, and to where.
TRANSITIONS: dict[str, tuple[frozenset[str], ProjectStatus]] = {
    "ProjectApproved": (frozenset({S.REGISTERED}), S.APPROVED),
    "FundraisingOpened": (frozenset({S.APPROVED, S.SUSPENDED}), S.FUNDRAISING),
    "FundraisingClosed": (frozenset({S.FUNDRAISING}), S.FUNDRAISING_CLOSED),
    "ProjectSuspended": (OPEN_STATES, S.SUSPENDED),
    "ProjectClosed": (frozenset({S.FUNDRAISING_CLOSED, S.EXECUTING, S.SUSPENDED}), S.CLOSED),
}
LEFTOVER_DISPOSITIONS = frozenset({"none", "return_to_donors", "transfer_to_project"})
SPENDING_STATES = frozenset({S.FUNDRAISING, S.FUNDRAISING_CLOSED, S.EXECUTING})


class EntryMaker(Protocol):
    def __call__(
        self, decision: str, reason: str = "", postings: tuple[Posting, ...] = (), **extra: Any
    ) -> JournalEntry: ...


@dataclass(frozen=True)
class Policy:
    # Disbursements at or above this need two distinct approvers (docs/ledger.md).
    dual_approval_threshold_fen: int = 1_000_000


def body_of(event: ev.Event, **extra: Any) -> dict[str, Any]:
    body = {
        k: v
        for k, v in event.to_record().items()
        if k not in PERSONAL_FIELDS
        and k not in ("event_id", "occurred_at", "project_id")
        and (v is not None or k not in LATER_OPTIONAL_FIELDS)
    }
    body.update(extra)
    return body


def decide(event: ev.Event, view: LedgerView, policy: Policy = Policy()) -> JournalEntry:
    project = view.projects.get(event.project_id)

    def entry(
        decision: str, reason: str = "", postings: tuple[Posting, ...] = (), **extra: Any
    ) -> JournalEntry:
        return JournalEntry(
            entry_id=event.event_id,
            kind=event.type_name,
            project_id=event.project_id,
            effective_at=event.occurred_at,
            decision=decision,
            reason=reason,
            body=body_of(event, **extra),
            postings=postings,
        )

    if isinstance(event, ev.ProjectRegistered):
        if project is not None:
            return entry(j.REJECTED, f"project {event.project_id} is already registered")
        return entry(j.RECORDED)
    if isinstance(event, ev.DonationConfirmed):
        return _confirmed(event, project, view, entry)
    if isinstance(event, ev.OfflineDonationRecorded):
        return _offline(event, project, entry)
    if isinstance(event, ev.DonationPledged | ev.DonationFailed):
        return entry(j.RECORDED)
    if project is None:
        return entry(j.REJECTED, f"unknown project {event.project_id}")
    if isinstance(event, ev.DonationRefunded):
        return _refund(event, project, view, entry)
    if isinstance(event, suspense.ResolutionEvent):
        return suspense.decide(event, project, view, entry)
    if isinstance(event, ev.ProjectClosed):
        return _close(event, project, view, entry)
    if isinstance(event, ev.ProjectResumed):
        return _resume(project, entry)
    if event.type_name in TRANSITIONS:
        allowed, target = TRANSITIONS[event.type_name]
        if project.status not in allowed:
            return entry(j.REJECTED, f"{event.type_name} is not allowed in state {project.status}")
        return entry(j.RECORDED, to=str(target))
    if isinstance(event, ev.ProgressReported | ev.CorrectionPublished):
        return entry(j.RECORDED)
    return _disbursement(event, project, view, policy, entry)


def _confirmed(
    event: ev.DonationConfirmed, project: ProjectTotals | None, view: LedgerView, entry: EntryMaker
) -> JournalEntry:
    if event.donation_id in view.donations:
        return entry(j.REJECTED, f"donation {event.donation_id} was already confirmed")
    gross = Money(event.gross_fen, event.currency)
    fee = Money(event.fee_fen, event.currency)
    source = acc.clearing(event.provider)
    fee_legs = transfer(source, acc.fees(event.provider), fee) if event.fee_fen else ()
    reason = _why_not_accepting(event.currency, project, event.project_id)
    target = acc.suspense(event.project_id) if reason else acc.project_fund(event.project_id)
    postings = (*fee_legs, *transfer(source, target, gross - fee))
    return entry(j.SUSPENSE if reason else j.POSTED, reason, postings)


def _offline(
    event: ev.OfflineDonationRecorded, project: ProjectTotals | None, entry: EntryMaker
) -> JournalEntry:
    amount = Money(event.amount_fen, event.currency)
    source = (
        acc.charity_sales(event.venue_id) if event.kind == "charity_sale" else acc.cash_box(event.venue_id)
    )
    reason = _why_not_accepting(event.currency, project, event.project_id)
    target = acc.suspense(event.project_id) if reason else acc.project_fund(event.project_id)
    return entry(j.SUSPENSE if reason else j.POSTED, reason, transfer(source, target, amount))


def _why_not_accepting(currency: str, project: ProjectTotals | None, project_id: str) -> str:
    if project is None:
        return f"unknown project {project_id}: held in suspense for refund or redirection"
    if project.status != S.FUNDRAISING:
        return f"project is {project.status}, not fundraising: held in suspense for refund or redirection"
    if currency != project.currency:
        return f"{currency} gift to a {project.currency} project: held in suspense"
    return ""


def _refund(
    event: ev.DonationRefunded, project: ProjectTotals, view: LedgerView, entry: EntryMaker
) -> JournalEntry:
    donation = view.donations.get(event.donation_id)
    if donation is None or donation.project_id != event.project_id:
        return entry(j.REJECTED, f"donation {event.donation_id} is not a confirmed gift to this project")
    if event.currency != donation.currency:
        return entry(j.REJECTED, f"refund in {event.currency} of a {donation.currency} gift")
    if event.amount_fen > donation.refundable_fen:
        return entry(
            j.REJECTED,
            f"refund of {event.amount_fen} fen exceeds the {donation.refundable_fen} fen still refundable",
        )
    source = acc.suspense(event.project_id) if donation.to_suspense else acc.project_fund(event.project_id)
    balance = project.suspense_fen if donation.to_suspense else project.fund_fen
    if event.amount_fen > balance:
        return entry(j.REJECTED, f"refund of {event.amount_fen} fen exceeds the {balance} fen available")
    amount = Money(event.amount_fen, event.currency)
    return entry(j.POSTED, "", transfer(source, acc.REFUNDS, amount))


def _close(
    event: ev.ProjectClosed, project: ProjectTotals, view: LedgerView, entry: EntryMaker
) -> JournalEntry:
    allowed, _ = TRANSITIONS["ProjectClosed"]
    if project.status not in allowed:
        return entry(j.REJECTED, f"ProjectClosed is not allowed in state {project.status}")
    if project.held_fen:
        return entry(j.REJECTED, f"{project.held_fen} fen is still held for approved disbursements")
    if event.leftover_disposition not in LEFTOVER_DISPOSITIONS:
        return entry(j.REJECTED, f"unknown leftover disposition {event.leftover_disposition!r}")
    leftover = project.fund_fen
    if leftover and event.leftover_disposition == "none":
        return entry(j.REJECTED, f"{leftover} fen is left over: a disposition is required")
    if event.leftover_disposition == "transfer_to_project" and not event.leftover_target_project_id:
        return entry(j.REJECTED, "transfer_to_project needs leftover_target_project_id")
    postings: tuple[Posting, ...] = ()
    if leftover:
        target = f"leftover:{event.project_id}:{event.leftover_disposition}"
        postings = transfer(acc.project_fund(event.project_id), target, Money(leftover, project.currency))
    return entry(j.POSTED if postings else j.RECORDED, "", postings, to=str(S.CLOSED), leftover_fen=leftover)


def _resume(project: ProjectTotals, entry: EntryMaker) -> JournalEntry:
    """A suspended project goes back to the state it was suspended from, whatever that was."""
    if project.status != S.SUSPENDED:
        return entry(j.REJECTED, f"ProjectResumed is not allowed in state {project.status}")
    if project.resumes_to is None:
        # Suspended before suspensions remembered their state (rebuild fills it in).
        return entry(j.REJECTED, "the state the project was suspended from is not known")
    return entry(j.RECORDED, to=project.resumes_to)


def _disbursement(
    event: ev.Event, project: ProjectTotals, view: LedgerView, policy: Policy, entry: EntryMaker
) -> JournalEntry:
    if isinstance(event, ev.DisbursementRequested):
        if event.disbursement_id in view.disbursements:
            return entry(j.REJECTED, f"disbursement {event.disbursement_id} already exists")
        if project.status not in SPENDING_STATES:
            return entry(j.REJECTED, f"no disbursements while the project is {project.status}")
        if event.currency != project.currency:
            return entry(j.REJECTED, f"{event.currency} disbursement from a {project.currency} project")
        return entry(j.RECORDED)
    disbursement_id = getattr(event, "disbursement_id", None)
    d = view.disbursements.get(disbursement_id) if isinstance(disbursement_id, str) else None
    if d is None or d.project_id != event.project_id:
        return entry(j.REJECTED, f"unknown disbursement {disbursement_id} for this project")
    if isinstance(event, ev.EvidenceAttached):
        return entry(j.RECORDED)
    if isinstance(event, ev.DisbursementApproved):
        if d.status != DisbursementStatus.REQUESTED:
            return entry(j.REJECTED, f"disbursement is {d.status}, not awaiting approval")
        if event.actor == d.requested_by:
            return entry(j.REJECTED, "an approver may not approve their own request")
        if event.actor in d.approvers:
            return entry(j.REJECTED, f"{event.actor} has already approved this disbursement")
        needed = 2 if d.amount_fen >= policy.dual_approval_threshold_fen else 1
        if len(d.approvers) + 1 < needed:
            return entry(j.RECORDED, f"approval {len(d.approvers) + 1} of {needed}", held=False)
        if d.amount_fen > project.fund_fen:
            return entry(
                j.REJECTED,
                f"available balance {project.fund_fen} fen does not cover {d.amount_fen} fen",
            )
        amount = Money(d.amount_fen, d.currency)
        legs = transfer(acc.project_fund(d.project_id), acc.project_held(d.project_id), amount)
        return entry(j.POSTED, "", legs, held=True)
    if isinstance(event, ev.DisbursementRejected):
        if d.status == DisbursementStatus.REQUESTED:
            return entry(j.RECORDED)
        if d.status == DisbursementStatus.HELD:
            amount = Money(d.amount_fen, d.currency)
            legs = transfer(acc.project_held(d.project_id), acc.project_fund(d.project_id), amount)
            return entry(j.POSTED, "hold released", legs)
        return entry(j.REJECTED, f"disbursement is already {d.status}")
    if isinstance(event, ev.DisbursementPaid):
        if d.status != DisbursementStatus.HELD:
            return entry(j.REJECTED, f"disbursement is {d.status}: only an approved, held one can be paid")
        amount = Money(d.amount_fen, d.currency)
        return entry(j.POSTED, "", transfer(acc.project_held(d.project_id), acc.PAYOUT, amount))
    return entry(j.REJECTED, f"the ledger has no rule for {event.type_name}")
