"""The console's disbursement pages: request with documents, approve or reject, pay, evidence.

Each step is a form (CSRF) that publishes an event with the person of the
session as its actor, then leads to the disbursement's page, which shows what
the ledger journaled for it: its decision and, for a refusal, its reason (an
approval beyond the available balance, say). Four eyes are checked twice: here,
early, so the requester's own approval or a second one by the same person is
refused before anything is sent, and by the ledger, which decides.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from services.api import disbursements as ds
from services.api.deps import WebSecretDep
from services.api.disbursements import (
    ApprovalIn,
    DeskDep,
    EvidenceIn,
    PaymentIn,
    RejectionIn,
    RequestFields,
)
from services.api.errors import Problem, page_errors
from services.api.models import PathId
from services.api.staff_auth import Actor, StaffAuthDep, require_page
from services.api.web import check_csrf, render
from services.contracts import events as ev
from services.contracts.validation import MAX_AMOUNT_FEN, MAX_DOCUMENTS
from services.donors.domain.amounts import AmountRefused, AmountRules
from services.ledger.read import totals_view
from services.staff.domain.roles import Permission, Person, allows

router = APIRouter(prefix="/staff/projects/{project_id}", tags=["pages", "staff"], include_in_schema=False)

Sha256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="a document's SHA-256, hex")]


def _may(permission: Permission) -> Any:
    return Depends(require_page(permission, project_id="project_id"))


Viewer = Annotated[Actor, _may(Permission.VIEW_CONSOLE)]
Requester = Annotated[Actor, _may(Permission.REQUEST_DISBURSEMENT)]
Approver = Annotated[Actor, _may(Permission.APPROVE_DISBURSEMENT)]
Payer = Annotated[Actor, _may(Permission.PAY_DISBURSEMENT)]
EvidenceAdder = Annotated[Actor, _may(Permission.ATTACH_EVIDENCE)]
Csrf = Annotated[str, Form(max_length=128)]
FormText = Annotated[str, Form(max_length=4000)]

SENT = "published: on to the disbursement's page, which shows the ledger's decision"
NOT_ALLOWED = "not allowed on this project (logged), or the form's CSRF token does not match"
STEP_ERRORS = page_errors(
    {
        303: SENT,
        403: NOT_ALLOWED,
        404: "no such project or disbursement",
        409: "four eyes: the requester may not approve, nor may one person approve twice (nothing sent)",
        422: "the page is shown again saying what is wrong",
    }
)
UPLOAD_ERRORS = page_errors(
    {
        303: SENT,
        403: NOT_ALLOWED,
        404: "no such project or disbursement",
        413: "a document is larger than the limit (nothing kept, nothing sent)",
        415: "a document is not a PDF, PNG or JPEG by its content (nothing kept, nothing sent)",
        422: "the form is shown again with each field's problem",
    }
)
REQUEST_FIELDS = ("payee", "purpose", "amount_yuan", "planned_on")


def _size(n: int) -> str:
    return f"{n // 1048576} MiB" if n % 1048576 == 0 else f"{n} B"


def _person(actor: Actor) -> Person:
    assert actor.person is not None  # pages take no machine client
    return actor.person


def _sent(project_id: str, disbursement_id: str, event: ev.Event) -> RedirectResponse:
    return RedirectResponse(
        f"/staff/projects/{project_id}/disbursements/{disbursement_id}?sent={event.event_id}",
        status.HTTP_303_SEE_OTHER,
    )


def _problems(error: ValidationError) -> list[Problem]:
    return [
        Problem(field=".".join(str(p) for p in e["loc"]) or "form", problem=str(e["msg"]))
        for e in error.errors()
    ]


def _said(error: ValidationError) -> str:
    return "; ".join(f"{p.field}: {p.problem}" for p in _problems(error))


@router.get(
    "/disbursements",
    response_class=HTMLResponse,
    responses=page_errors({403: "not allowed on this project (logged)", 404: "no such project"}),
)
async def disbursement_list(
    request: Request, project_id: PathId, actor: Viewer, desk: DeskDep
) -> HTMLResponse:
    project = await ds.project_or_404(desk, project_id)
    person = _person(actor)
    return render(
        request,
        "staff_disbursements.html",
        person=person,
        project=totals_view(project),
        disbursements=await ds.listed(desk, project_id),
        threshold_fen=desk.threshold_fen,
        may_request=allows(person, Permission.REQUEST_DISBURSEMENT, project_id=project_id),
    )


async def _request_form(
    request: Request,
    actor: Actor,
    desk: ds.Desk,
    project_id: str,
    form: dict[str, str],
    problems: list[Problem],
    status_code: int = 200,
) -> HTMLResponse:
    project = await ds.project_or_404(desk, project_id)
    return render(
        request,
        "staff_disbursement_new.html",
        status_code,
        person=_person(actor),
        project=totals_view(project),
        form={k: form.get(k, "") for k in REQUEST_FIELDS},
        problems=problems,
        threshold_fen=desk.threshold_fen,
        max_size=_size(desk.max_bytes),
    )


@router.get(
    "/disbursements/new",
    response_class=HTMLResponse,
    responses=page_errors({403: "may not request disbursements here (logged)", 404: "no such project"}),
)
async def request_form(request: Request, project_id: PathId, actor: Requester, desk: DeskDep) -> HTMLResponse:
    return await _request_form(request, actor, desk, project_id, {}, [])


def _request_of(form: dict[str, str], files: list[UploadFile]) -> tuple[RequestFields | None, list[Problem]]:
    """The form's request, or what is wrong with it, field by field (the amount typed in yuan)."""
    problems: list[Problem] = []
    values: dict[str, Any] = {k: form.get(k, "").strip() for k in ("payee", "purpose", "planned_on")}
    try:
        values["amount_fen"] = AmountRules(MAX_AMOUNT_FEN).parse_yuan(form.get("amount_yuan", ""))
    except AmountRefused as refused:
        problems.append(Problem(field="amount_yuan", problem=str(refused)))
        values["amount_fen"] = 1  # refused above; the other fields are still checked below
    if not files:
        problem = "请上传至少一份证明文件 · upload at least one supporting document"
        problems.append(Problem(field="documents", problem=problem))
    elif len(files) > MAX_DOCUMENTS:
        problems.append(Problem(field="documents", problem=f"at most {MAX_DOCUMENTS} documents"))
    try:
        checked = RequestFields.model_validate(values)
    except ValidationError as error:
        return None, problems + _problems(error)
    return (None if problems else checked), problems


@router.post("/disbursements", responses=UPLOAD_ERRORS)
async def request_disbursement(
    request: Request, project_id: PathId, actor: Requester, secret: WebSecretDep, desk: DeskDep
) -> Response:
    if ds.too_large_to_read(request, desk.max_bytes, MAX_DOCUMENTS):
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "the upload is larger than the limits allow")
    await ds.project_or_404(desk, project_id)
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str) and len(v) <= 4000}
    check_csrf(request, secret, fields.get("csrf", ""))
    files = [f for f in form.getlist("documents") if isinstance(f, UploadFile) and f.filename]
    checked, problems = _request_of(fields, files)
    if checked is None:
        return await _request_form(
            request, actor, desk, project_id, fields, problems, status.HTTP_422_UNPROCESSABLE_CONTENT
        )
    try:
        kept = await ds.keep_uploads(desk, actor, project_id, files)
    except HTTPException as refused:
        problem = Problem(field="documents", problem=str(refused.detail))
        return await _request_form(request, actor, desk, project_id, fields, [problem], refused.status_code)
    event = await ds.request_disbursement(
        desk,
        actor,
        project_id,
        **{**checked.model_dump(), "planned_on": checked.planned_on.isoformat()},
        document_sha256s=[d.sha256 for d in kept],
    )
    return _sent(project_id, event.disbursement_id, event)


async def _page(
    request: Request,
    project_id: str,
    disbursement_id: str,
    actor: Actor,
    desk: ds.Desk,
    *,
    refusal: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    """A disbursement's page; `refusal` says why a step was not sent."""
    project = await ds.project_or_404(desk, project_id)
    sent = request.query_params.get("sent", "")
    found = await asyncio.to_thread(ds.find, desk, project_id, disbursement_id)
    if found is None and not sent:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown disbursement {disbursement_id!r}")
    person = _person(actor)
    steps = found.steps if found else []
    evidence = found.evidence if found else []
    shown = await asyncio.to_thread(
        desk.documents.documents_of,
        project_id,
        [*(found.documents if found else []), *(e.body["document_sha256"] for e in evidence)],
    )
    status_now = found.status if found else ""
    four_eyes = ds.four_eyes_refusal(found, person.username) if found else None

    def may(permission: Permission) -> bool:
        return allows(person, permission, project_id=project_id)

    return render(
        request,
        "staff_disbursement.html",
        status_code,
        person=person,
        project=totals_view(project),
        d=found,
        sent=sent,
        decided=next((s for s in steps if sent and s.entry_id == sent), None),
        refusal=refusal,
        documents=[doc for doc in shown if found and doc.sha256 in found.documents],
        evidence_documents={doc.sha256: doc for doc in shown},
        may_reject=status_now == "requested" and may(Permission.APPROVE_DISBURSEMENT),
        may_approve=status_now == "requested" and may(Permission.APPROVE_DISBURSEMENT) and not four_eyes,
        four_eyes=four_eyes if status_now == "requested" else None,
        may_pay=status_now == "held" and may(Permission.PAY_DISBURSEMENT),
        may_attach=status_now not in ("", "refused") and may(Permission.ATTACH_EVIDENCE),
    )


@router.get(
    "/disbursements/{disbursement_id}",
    response_class=HTMLResponse,
    responses=page_errors({403: "not allowed on this project (logged)", 404: "no such disbursement"}),
)
async def disbursement_page(
    request: Request, project_id: PathId, disbursement_id: PathId, actor: Viewer, desk: DeskDep
) -> HTMLResponse:
    return await _page(request, project_id, disbursement_id, actor, desk)


@dataclass(frozen=True)
class _StepForm:
    """What every step on a disbursement's page posts: which disbursement, and the form's CSRF
    token (checked by the step, after the actor's permission)."""

    request: Request
    project_id: str
    disbursement_id: str
    secret: bytes
    desk: ds.Desk
    csrf: str

    def check_csrf(self) -> None:
        check_csrf(self.request, self.secret, self.csrf)

    async def page(self, actor: Actor, refusal: str, status_code: int) -> HTMLResponse:
        """The disbursement's page again, saying why the step was not sent."""
        where = (self.request, self.project_id, self.disbursement_id, actor, self.desk)
        return await _page(*where, refusal=refusal, status_code=status_code)

    def sent(self, event: ev.Event) -> RedirectResponse:
        return _sent(self.project_id, self.disbursement_id, event)


async def _step_form(
    request: Request,
    project_id: PathId,
    disbursement_id: PathId,
    secret: WebSecretDep,
    desk: DeskDep,
    csrf: Csrf = "",
) -> _StepForm:
    return _StepForm(request, project_id, disbursement_id, secret, desk, csrf)


StepForm = Annotated[_StepForm, Depends(_step_form)]


@router.post("/disbursements/{disbursement_id}/approve", responses=STEP_ERRORS)
async def approve(actor: Approver, form: StepForm, comment: FormText = "") -> Response:
    form.check_csrf()
    try:
        checked = ApprovalIn.model_validate({"comment": comment.strip() or None})
    except ValidationError as error:
        return await form.page(actor, _said(error), status.HTTP_422_UNPROCESSABLE_CONTENT)
    try:
        event = await ds.approve(form.desk, actor, form.project_id, form.disbursement_id, checked.comment)
    except HTTPException as refused:
        if refused.status_code != status.HTTP_409_CONFLICT:
            raise
        # Four eyes, refused before anything was sent: the page says why.
        return await form.page(actor, str(refused.detail), refused.status_code)
    return form.sent(event)


async def _text_step(
    form: _StepForm,
    actor: Actor,
    event_type: type[ev.Event],
    checked: type[RejectionIn | PaymentIn],
    values: dict[str, str],
) -> Response:
    """A step that says something (why it is rejected, the payout's reference), checked like the
    API's body; otherwise the page says what is wrong and nothing is sent."""
    form.check_csrf()
    try:
        body = checked.model_validate({k: v.strip() for k, v in values.items()})
    except ValidationError as error:
        return await form.page(actor, _said(error), status.HTTP_422_UNPROCESSABLE_CONTENT)
    where = (form.project_id, form.disbursement_id)
    event = await ds.step(form.desk, event_type, actor, *where, **body.event_fields())
    return form.sent(event)


@router.post("/disbursements/{disbursement_id}/reject", responses=STEP_ERRORS)
async def reject(actor: Approver, form: StepForm, comment: FormText = "") -> Response:
    return await _text_step(form, actor, ev.DisbursementRejected, RejectionIn, {"comment": comment})


@router.post("/disbursements/{disbursement_id}/pay", responses=STEP_ERRORS)
async def pay(actor: Payer, form: StepForm, payout_ref: FormText = "") -> Response:
    return await _text_step(form, actor, ev.DisbursementPaid, PaymentIn, {"payout_ref": payout_ref})


@router.post("/disbursements/{disbursement_id}/evidence", responses=UPLOAD_ERRORS)
async def attach_evidence(
    request: Request,
    project_id: PathId,
    disbursement_id: PathId,
    actor: EvidenceAdder,
    secret: WebSecretDep,
    desk: DeskDep,
) -> Response:
    if ds.too_large_to_read(request, desk.max_bytes, 1):
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "the upload is larger than the limit")
    form = await request.form()
    check_csrf(request, secret, str(form.get("csrf", "")))
    await ds.disbursement_or_404(desk, project_id, disbursement_id)
    upload = form.get("document")
    again = (request, project_id, disbursement_id, actor, desk)
    if not isinstance(upload, UploadFile) or not upload.filename:
        refusal = "请选择文件 · choose the file to attach"
        return await _page(*again, refusal=refusal, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    try:
        described = EvidenceIn.model_validate(
            {"document_sha256": "0" * 64, "description": str(form.get("description", "")).strip()}
        )
    except ValidationError as error:
        return await _page(*again, refusal=_said(error), status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    try:
        [kept] = await ds.keep_uploads(desk, actor, project_id, [upload])
    except HTTPException as refused:
        return await _page(*again, refusal=str(refused.detail), status_code=refused.status_code)
    event = await ds.publish(
        desk,
        ev.EvidenceAttached,
        actor,
        project_id,
        disbursement_id=disbursement_id,
        document_sha256=kept.sha256,
        description=described.description,
    )
    return _sent(project_id, disbursement_id, event)


@router.get(
    "/documents/{sha256}",
    responses=page_errors(
        {
            200: "the document, as an attachment",
            403: "not allowed on this project (logged)",
            404: "no such document for this project",
        }
    ),
)
async def download(
    request: Request, project_id: PathId, sha256: Sha256, actor: Viewer, desk: DeskDep, auth: StaffAuthDep
) -> Response:
    """A document, to be saved rather than shown (it came from someone's upload); logged."""
    document = await asyncio.to_thread(desk.documents.document, sha256, project_id)
    if document is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no document {sha256} for project {project_id!r}")
    content = await asyncio.to_thread(desk.documents.read, document)
    detail = f"{document.filename} ({sha256})"
    await asyncio.to_thread(auth.log, request, actor.name, "document.download", "allowed", detail)
    ascii_name = "".join(c if (c.isascii() and c.isalnum()) or c in "._-" else "_" for c in document.filename)
    disposition = (
        f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(document.filename, safe='')}"
    )
    return Response(
        content,
        media_type=document.media_type,
        headers={
            "Content-Disposition": disposition,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, no-store",
        },
    )
