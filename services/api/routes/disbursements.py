"""Disbursements in the JSON API: documents, request, approve or reject, pay, evidence.

For people with a staff session, the console pages' machine-readable twin; the
actor is always the person of the session. Machine clients are not let in:
four eyes compare people. Every step answers 202 with the event's id; the
ledger decides, and GET …/disbursements shows its decisions and reasons.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, HTTPException, Request, UploadFile, status

from services.api import disbursements as ds
from services.api.disbursements import (
    ApprovalIn,
    DeskDep,
    EvidenceIn,
    PaymentIn,
    RejectionIn,
    RequestIn,
)
from services.api.errors import INVALID, INVALID_BODY, PUBLISHES, STAFF_ACCESS, errors
from services.api.models import PathId
from services.api.staff_auth import Actor, require
from services.contracts import events as ev
from services.staff.domain.roles import Permission

router = APIRouter(prefix="/api/projects/{project_id}", tags=["disbursements"])

Viewer = Annotated[Actor, Depends(require(Permission.VIEW_CONSOLE, project_id="project_id"))]
Requester = Annotated[Actor, Depends(require(Permission.REQUEST_DISBURSEMENT, project_id="project_id"))]
Approver = Annotated[Actor, Depends(require(Permission.APPROVE_DISBURSEMENT, project_id="project_id"))]
Payer = Annotated[Actor, Depends(require(Permission.PAY_DISBURSEMENT, project_id="project_id"))]
# Uploading a document serves a request (managers) and evidence (managers, finance).
Uploader = Annotated[Actor, Depends(require(Permission.ATTACH_EVIDENCE, project_id="project_id"))]

UNKNOWN = {404: "no such project, or no such disbursement of it in the ledger's journal"}
STEP_ERRORS = errors({**STAFF_ACCESS, **UNKNOWN, **INVALID_BODY, **PUBLISHES})


def _accepted(event: ev.Event, disbursement_id: str) -> dict[str, Any]:
    return {"accepted": True, "event_id": event.event_id, "disbursement_id": disbursement_id}


async def _step(
    desk: ds.Desk,
    event_type: type[ev.Event],
    actor: Actor,
    where: tuple[str, str],
    body: RejectionIn | PaymentIn | EvidenceIn,
) -> dict[str, Any]:
    """Publishes a step on the disbursement `where` (project, disbursement) with the body's fields."""
    event = await ds.step(desk, event_type, actor, *where, **body.event_fields())
    return _accepted(event, where[1])


@router.get("/disbursements", responses=errors({**STAFF_ACCESS, **UNKNOWN, **INVALID}))
async def list_disbursements(project_id: PathId, actor: Viewer, desk: DeskDep) -> list[dict[str, Any]]:
    """The project's disbursements, newest first: state, approvals given and needed, every step the
    ledger journaled with its decision and reason."""
    await ds.project_or_404(desk, project_id)
    return [d.as_json for d in await ds.listed(desk, project_id)]


@router.post(
    "/documents",
    status_code=status.HTTP_201_CREATED,
    responses=errors(
        {
            **STAFF_ACCESS,
            **UNKNOWN,
            **INVALID_BODY,
            413: "larger than this deployment's limit; nothing kept",
            415: "not a PDF, PNG or JPEG by its content; nothing kept",
        }
    ),
)
async def upload_document(
    request: Request,
    project_id: PathId,
    actor: Uploader,
    desk: DeskDep,
    file: Annotated[UploadFile, File(description="a PDF, PNG or JPEG")],
) -> dict[str, Any]:
    """Keeps a supporting document or a piece of evidence under its SHA-256, for a request or
    evidence to name."""
    if ds.too_large_to_read(request, desk.max_bytes, 1):
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "the upload is larger than the limit")
    await ds.project_or_404(desk, project_id)
    [kept] = await ds.keep_uploads(desk, actor, project_id, [file])
    return {"sha256": kept.sha256, "media_type": kept.media_type, "size_bytes": kept.size_bytes}


@router.post(
    "/disbursements",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors({**STAFF_ACCESS, 404: "no such project", **INVALID_BODY, **PUBLISHES}),
)
async def request_disbursement(
    project_id: PathId, body: RequestIn, actor: Requester, desk: DeskDep
) -> dict[str, Any]:
    """Asks to pay money out of the project; the ledger refuses it unless the project may spend."""
    fields = body.model_dump()
    event = await ds.request_disbursement(
        desk, actor, project_id, **{**fields, "planned_on": body.planned_on.isoformat()}
    )
    return _accepted(event, event.disbursement_id)


@router.post(
    "/disbursements/{disbursement_id}/approve",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(
        {
            **STAFF_ACCESS,
            **UNKNOWN,
            409: "the requester may not approve, nor may one person approve twice; nothing was sent",
            **INVALID_BODY,
            **PUBLISHES,
        }
    ),
)
async def approve(
    project_id: PathId, disbursement_id: PathId, body: ApprovalIn, actor: Approver, desk: DeskDep
) -> dict[str, Any]:
    """One approval; above the threshold the ledger holds the funds at the second, if they suffice."""
    event = await ds.approve(desk, actor, project_id, disbursement_id, body.comment)
    return _accepted(event, disbursement_id)


@router.post(
    "/disbursements/{disbursement_id}/reject", status_code=status.HTTP_202_ACCEPTED, responses=STEP_ERRORS
)
async def reject(
    project_id: PathId, disbursement_id: PathId, body: RejectionIn, actor: Approver, desk: DeskDep
) -> dict[str, Any]:
    """Turns the request down; funds the ledger held for it are released."""
    return await _step(desk, ev.DisbursementRejected, actor, (project_id, disbursement_id), body)


@router.post(
    "/disbursements/{disbursement_id}/pay", status_code=status.HTTP_202_ACCEPTED, responses=STEP_ERRORS
)
async def pay(
    project_id: PathId, disbursement_id: PathId, body: PaymentIn, actor: Payer, desk: DeskDep
) -> dict[str, Any]:
    """The money left: the ledger pays out what it held, or refuses a disbursement not approved."""
    return await _step(desk, ev.DisbursementPaid, actor, (project_id, disbursement_id), body)


@router.post(
    "/disbursements/{disbursement_id}/evidence",
    status_code=status.HTTP_202_ACCEPTED,
    responses=errors(
        {
            **STAFF_ACCESS,
            404: "no such project or disbursement",
            **INVALID_BODY,
            **PUBLISHES,
        }
    ),
)
async def attach_evidence(
    project_id: PathId, disbursement_id: PathId, body: EvidenceIn, actor: Uploader, desk: DeskDep
) -> dict[str, Any]:
    """An invoice, photo or sign-off, uploaded first to …/documents, named by its SHA-256."""
    if await asyncio.to_thread(desk.documents.document, body.document_sha256, project_id) is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"no document uploaded for project {project_id!r} has the SHA-256 {body.document_sha256}",
        )
    return await _step(desk, ev.EvidenceAttached, actor, (project_id, disbursement_id), body)
