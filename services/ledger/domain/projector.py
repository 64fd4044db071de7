"""Applies a decided journal entry to the projections. Never decides anything.

Live processing and `rebuild` both go through `apply_entry`, which is why a
rebuilt projection equals the live one: the decision is read from the entry.
"""

from __future__ import annotations

from services.ledger.domain import journal as j
from services.ledger.domain import suspense
from services.ledger.domain.journal import JournalEntry
from services.ledger.domain.state import (
    DisbursementRecord,
    DisbursementStatus,
    DonationRecord,
    ProjectStatus,
    ProjectTotals,
)
from services.ledger.domain.view import LedgerView

_STATUS_EVENTS = frozenset(
    {
        "ProjectApproved",
        "FundraisingOpened",
        "FundraisingClosed",
        "ProjectSuspended",
        "ProjectResumed",
        "ProjectClosed",
    }
)


def apply_entry(entry: JournalEntry, view: LedgerView) -> None:
    if entry.decision == j.REJECTED:
        return
    b = entry.body
    kind = entry.kind
    if kind == "ProjectRegistered":
        view.projects[entry.project_id] = ProjectTotals(
            project_id=entry.project_id,
            currency=b["currency"],
            plan=dict(b),
            goal_fen=b["goal_fen"],
            registered_at=entry.effective_at,
        )
        view.dirty_projects.add(entry.project_id)
        return
    project = view.projects.get(entry.project_id)
    if kind == "DonationConfirmed":
        _apply_confirmed(entry, view, project)
    elif kind == "OfflineDonationRecorded" and project is not None:
        _apply_offline(entry, project)
    elif kind == "DonationRefunded":
        _apply_refund(entry, view, project)
    elif kind in suspense.KINDS:
        suspense.apply(entry, view, project)
    elif kind.startswith("Disbursement") or kind == "EvidenceAttached":
        _apply_disbursement(entry, view, project)
    elif project is not None and kind in _STATUS_EVENTS:
        # A suspension remembers where the project was; any way out of it forgets.
        project.resumes_to = str(project.status) if kind == "ProjectSuspended" else None
        project.status = b["to"]
        if kind == "FundraisingOpened" and project.opened_at is None:
            project.opened_at = entry.effective_at
        if kind == "ProjectClosed":
            project.closed_at = entry.effective_at
            project.leftover_fen += b["leftover_fen"]
            project.fund_fen -= b["leftover_fen"]
    elif project is not None and kind in ("ProgressReported", "CorrectionPublished"):
        project.last_disclosure_at = entry.effective_at
    if project is not None:
        view.dirty_projects.add(project.project_id)


def _apply_confirmed(entry: JournalEntry, view: LedgerView, project: ProjectTotals | None) -> None:
    b = entry.body
    view.donations[b["donation_id"]] = DonationRecord(
        donation_id=b["donation_id"],
        project_id=entry.project_id,
        currency=b["currency"],
        gross_fen=b["gross_fen"],
        fee_fen=b["fee_fen"],
        to_suspense=entry.decision == j.SUSPENSE,
        donor_ref=b.get("donor_ref"),
    )
    view.dirty_donations.add(b["donation_id"])
    if project is None:
        return
    net = b["gross_fen"] - b["fee_fen"]
    if entry.decision == j.SUSPENSE:
        project.suspense_fen += net
        return
    project.gross_fen += b["gross_fen"]
    project.fees_fen += b["fee_fen"]
    project.net_fen += net
    project.fund_fen += net
    project.donations_count += 1
    project.by_channel[b["channel"]] = project.by_channel.get(b["channel"], 0) + b["gross_fen"]


def _apply_offline(entry: JournalEntry, project: ProjectTotals) -> None:
    b = entry.body
    amount = b["amount_fen"]
    if entry.decision == j.SUSPENSE:
        project.suspense_fen += amount
        return
    if b["kind"] == "charity_sale":
        project.offline_sales_fen += amount
    else:
        project.offline_cash_fen += amount
    project.fund_fen += amount
    channel = f"offline_{b['kind']}"
    project.by_channel[channel] = project.by_channel.get(channel, 0) + amount


def _apply_refund(entry: JournalEntry, view: LedgerView, project: ProjectTotals | None) -> None:
    b = entry.body
    donation = view.donations[b["donation_id"]]
    donation.refunded_fen += b["amount_fen"]
    view.dirty_donations.add(donation.donation_id)
    if project is None:
        return
    if donation.to_suspense:
        project.suspense_fen -= b["amount_fen"]
    else:
        project.refunded_fen += b["amount_fen"]
        project.fund_fen -= b["amount_fen"]


def _apply_disbursement(entry: JournalEntry, view: LedgerView, project: ProjectTotals | None) -> None:
    b = entry.body
    if entry.kind == "DisbursementRequested":
        view.disbursements[b["disbursement_id"]] = DisbursementRecord(
            disbursement_id=b["disbursement_id"],
            project_id=entry.project_id,
            currency=b["currency"],
            amount_fen=b["amount_fen"],
            requested_by=b["actor"],
            payee=b["payee"],
        )
        view.dirty_disbursements.add(b["disbursement_id"])
        return
    d = view.disbursements[b["disbursement_id"]]
    view.dirty_disbursements.add(d.disbursement_id)
    if entry.kind == "DisbursementApproved":
        d.approvers.append(b["actor"])
        if b.get("held"):
            d.status = DisbursementStatus.HELD
            if project is not None:
                project.fund_fen -= d.amount_fen
                project.held_fen += d.amount_fen
    elif entry.kind == "DisbursementRejected":
        if d.status == DisbursementStatus.HELD and project is not None:
            project.fund_fen += d.amount_fen
            project.held_fen -= d.amount_fen
        d.status = DisbursementStatus.REJECTED
    elif entry.kind == "DisbursementPaid":
        d.status = DisbursementStatus.PAID
        if project is not None:
            project.held_fen -= d.amount_fen
            project.disbursed_fen += d.amount_fen
            if project.status == ProjectStatus.FUNDRAISING_CLOSED:
                project.status = ProjectStatus.EXECUTING
    elif entry.kind == "EvidenceAttached":
        d.evidence.append(b["document_sha256"])
