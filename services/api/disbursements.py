"""Disbursements at the HTTP edge: what the journal says of each, and publishing their steps.

The console's pages and the JSON API both come through here. A disbursement's
state is read from the ledger's journal, entry by entry, so the pages show what
the ledger decided and why; the API only refuses early what four eyes forbid
outright (approving one's own request, approving twice), and the ledger decides
the rest (the balance, the state), as the authority it is.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from pydantic import Field
from starlette.datastructures import UploadFile

from services.api.deps import PublisherDep, QueriesDep, SettingsDep
from services.api.models import Fen, Long, Short, _Strict
from services.api.producer import EventPublisher
from services.api.staff_auth import Actor, now_ms
from services.api.submission import publish_or_503
from services.contracts import events as ev
from services.contracts.validation import MAX_DOCUMENTS
from services.ledger.read import LedgerQueries, ProjectTotals
from services.staff.adapters.documents import Document, DocumentStore
from services.staff.domain.documents import DocumentRefused

Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256, lower-case hex")]
KINDS = (
    "DisbursementRequested",
    "DisbursementApproved",
    "DisbursementRejected",
    "DisbursementPaid",
    "EvidenceAttached",
)


class RequestFields(_Strict):
    """What a disbursement request says; its currency is the project's."""

    payee: Short
    purpose: Long
    amount_fen: Fen
    planned_on: date = Field(description="the day the money is meant to leave (YYYY-MM-DD)")


class RequestIn(RequestFields):
    document_sha256s: list[Sha256Hex] = Field(
        min_length=1,
        max_length=MAX_DOCUMENTS,
        description="supporting documents, each uploaded first to …/documents",
    )


class ApprovalIn(_Strict):
    comment: Short | None = None


class RejectionIn(_Strict):
    comment: Short = Field(description="why the request is turned down")

    def event_fields(self) -> dict[str, Any]:
        return {"reason": self.comment}


class PaymentIn(_Strict):
    payout_ref: Short = Field(description="the bank's or payment provider's reference of the transfer")

    def event_fields(self) -> dict[str, Any]:
        return {"payout_ref": self.payout_ref}


class EvidenceIn(_Strict):
    document_sha256: Sha256Hex
    description: Long

    def event_fields(self) -> dict[str, Any]:
        return {"document_sha256": self.document_sha256, "description": self.description}


@dataclass(frozen=True)
class Step:
    """One entry the ledger journaled for a disbursement."""

    seq: int
    entry_id: str
    kind: str
    decision: str
    reason: str
    actor: str
    body: dict[str, Any]

    @property
    def refused(self) -> bool:
        return self.decision == "rejected"


@dataclass
class Disbursement:
    """A disbursement as the journal tells it; `needed` approvals under this deployment's threshold."""

    disbursement_id: str
    amount_fen: int
    currency: str
    payee: str
    purpose: str
    planned_on: str | None
    requested_by: str
    documents: list[str]
    needed: int
    status: str = "requested"  # refused (by the ledger), requested, held, rejected, paid
    payout_ref: str = ""
    approvers: list[str] = field(default_factory=list)
    evidence: list[Step] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    @property
    def as_json(self) -> dict[str, Any]:
        return {
            "disbursement_id": self.disbursement_id,
            "amount_fen": self.amount_fen,
            "currency": self.currency,
            "payee": self.payee,
            "purpose": self.purpose,
            "planned_on": self.planned_on,
            "requested_by": self.requested_by,
            "document_sha256s": self.documents,
            "status": self.status,
            "approvals_needed": self.needed,
            "approvers": self.approvers,
            "payout_ref": self.payout_ref or None,
            "evidence": [
                {"document_sha256": e.body["document_sha256"], "description": e.body["description"]}
                for e in self.evidence
            ],
            "steps": [
                {"seq": s.seq, "kind": s.kind, "decision": s.decision, "reason": s.reason, "actor": s.actor}
                for s in self.steps
            ],
        }


def approvals_needed(amount_fen: int, threshold_fen: int) -> int:
    """The ledger's rule (services/ledger/domain/book.py), with the setting the ledger runs with."""
    return 2 if amount_fen >= threshold_fen else 1


def _step(stored: Any) -> Step:
    record = stored.record
    body = record.get("body") or {}
    return Step(
        seq=stored.seq,
        entry_id=record.get("entry_id", ""),
        kind=record.get("kind", ""),
        decision=record.get("decision", ""),
        reason=record.get("reason", ""),
        actor=body.get("actor", ""),
        body=body,
    )


def disbursements_of(queries: LedgerQueries, project_id: str, threshold_fen: int) -> list[Disbursement]:
    """The project's disbursements, newest first, each with every step the ledger journaled."""
    found: dict[str, Disbursement] = {}
    for stored in queries.project_entries(project_id, KINDS):
        step = _step(stored)
        b = step.body
        if step.kind == "DisbursementRequested":
            if b["disbursement_id"] in found:  # a repeated id: the ledger refused it
                found[b["disbursement_id"]].steps.append(step)
                continue
            found[b["disbursement_id"]] = Disbursement(
                disbursement_id=b["disbursement_id"],
                amount_fen=b["amount_fen"],
                currency=b["currency"],
                payee=b["payee"],
                purpose=b["purpose"],
                planned_on=b.get("planned_on"),
                requested_by=step.actor,
                documents=list(b.get("document_sha256s") or []),
                needed=approvals_needed(b["amount_fen"], threshold_fen),
                status="refused" if step.refused else "requested",
                steps=[step],
            )
            continue
        d = found.get(b.get("disbursement_id", ""))
        if d is None:
            continue  # an entry for a disbursement the ledger never knew (it refused it)
        d.steps.append(step)
        if step.refused:
            continue
        if step.kind == "DisbursementApproved":
            d.approvers.append(step.actor)
            if b.get("held"):
                d.status = "held"
        elif step.kind == "DisbursementRejected":
            d.status = "rejected"
        elif step.kind == "DisbursementPaid":
            d.status, d.payout_ref = "paid", b.get("payout_ref", "")
        elif step.kind == "EvidenceAttached":
            d.evidence.append(step)
    return list(found.values())[::-1]


@dataclass(frozen=True)
class Desk:
    """What every disbursement route works with: the log, the journal, the documents, the rules."""

    publisher: EventPublisher
    queries: LedgerQueries
    documents: DocumentStore
    threshold_fen: int  # from here up, two approvers (the ledger's setting)
    max_bytes: int  # the largest document taken


async def get_desk(
    request: Request, publisher: PublisherDep, queries: QueriesDep, settings: SettingsDep
) -> Desk:
    documents: DocumentStore = request.app.state.documents
    return Desk(
        publisher, queries, documents, settings.disbursement_dual_approval_fen, settings.document_max_bytes
    )


DeskDep = Annotated[Desk, Depends(get_desk)]


def find(desk: Desk, project_id: str, disbursement_id: str) -> Disbursement | None:
    listed = disbursements_of(desk.queries, project_id, desk.threshold_fen)
    return next((d for d in listed if d.disbursement_id == disbursement_id), None)


async def listed(desk: Desk, project_id: str) -> list[Disbursement]:
    return await asyncio.to_thread(disbursements_of, desk.queries, project_id, desk.threshold_fen)


async def project_or_404(desk: Desk, project_id: str) -> ProjectTotals:
    project = await asyncio.to_thread(desk.queries.project, project_id)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")
    return project


async def disbursement_or_404(desk: Desk, project_id: str, disbursement_id: str) -> Disbursement:
    found = await asyncio.to_thread(find, desk, project_id, disbursement_id)
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no disbursement {disbursement_id!r} of project {project_id!r} in the ledger's journal",
        )
    return found


def four_eyes_refusal(d: Disbursement, approver: str) -> str | None:
    """Why this person may not approve, when four eyes forbid it outright; None otherwise."""
    if approver == d.requested_by:
        return "申请人不能批准自己的申请 · you requested this disbursement: another person must approve it"
    if approver in d.approvers:
        return (
            "您已批准过此申请，第二位批准人须是另一人 · you have already approved this disbursement; "
            "the second approval must come from someone else"
        )
    return None


async def publish(
    desk: Desk, event_type: type[ev.Event], actor: Actor, project_id: str, **fields: Any
) -> ev.Event:
    """A disbursement step as an event of the person acting; the ledger decides it."""
    event = event_type(
        event_id=str(uuid.uuid4()),
        occurred_at=ev.utc_now_ms(),
        actor=actor.name,
        project_id=project_id,
        **fields,
    )
    await publish_or_503(desk.publisher, event)
    return event


async def step(
    desk: Desk, event_type: type[ev.Event], actor: Actor, project_id: str, disbursement_id: str, **fields: Any
) -> ev.Event:
    """A step on a disbursement the journal knows (404 otherwise): reject, pay, evidence."""
    await disbursement_or_404(desk, project_id, disbursement_id)
    return await publish(desk, event_type, actor, project_id, disbursement_id=disbursement_id, **fields)


async def request_disbursement(
    desk: Desk,
    actor: Actor,
    project_id: str,
    *,
    amount_fen: int,
    payee: str,
    purpose: str,
    planned_on: str,
    document_sha256s: list[str],
) -> ev.DisbursementRequested:
    """Publish DisbursementRequested; every document named must have been uploaded for the project."""
    project = await project_or_404(desk, project_id)
    known = await asyncio.to_thread(desk.documents.documents_of, project_id, document_sha256s)
    missing = sorted(set(document_sha256s) - {d.sha256 for d in known})
    if missing:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"no document uploaded for project {project_id!r} has the SHA-256 {', '.join(missing)}",
        )
    event = await publish(
        desk,
        ev.DisbursementRequested,
        actor,
        project_id,
        disbursement_id=str(uuid.uuid4()),
        amount_fen=amount_fen,
        currency=project.currency,
        payee=payee,
        purpose=purpose,
        planned_on=planned_on,
        document_sha256s=document_sha256s,
    )
    assert isinstance(event, ev.DisbursementRequested)
    return event


async def approve(
    desk: Desk, actor: Actor, project_id: str, disbursement_id: str, comment: str | None
) -> ev.Event:
    """Publish one approval, unless four eyes forbid it outright (409, nothing published)."""
    d = await disbursement_or_404(desk, project_id, disbursement_id)
    refusal = four_eyes_refusal(d, actor.name)
    if refusal is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{refusal}; nothing was sent")
    return await publish(
        desk, ev.DisbursementApproved, actor, project_id, disbursement_id=disbursement_id, comment=comment
    )


async def keep_uploads(
    desk: Desk, actor: Actor, project_id: str, uploads: list[UploadFile]
) -> list[Document]:
    """Keep uploaded files once every one is checked: one refused raises HTTPException (413, 415,
    422) naming the file, and nothing is kept. A file is read no further than a byte past the limit."""
    read = [(u.filename or "document", await u.read(desk.max_bytes + 1)) for u in uploads]
    for filename, content in read:
        try:
            desk.documents.rules.media_type(content)
        except DocumentRefused as refused:
            raise HTTPException(refused.status, f"{filename}: {refused.reason}") from None
    return [
        await asyncio.to_thread(
            desk.documents.keep,
            content,
            project_id=project_id,
            filename=filename,
            uploaded_by=actor.name,
            now_ms=now_ms(),
        )
        for filename, content in read
    ]


def too_large_to_read(request: Request, max_bytes: int, files: int) -> bool:
    """Whether the request says, before it is read, that it is larger than its files may be."""
    declared = request.headers.get("content-length", "")
    return declared.isdigit() and int(declared) > max_bytes * files + 64 * 1024
