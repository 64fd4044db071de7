"""The console's project pages: each project's state, what the ledger decided, and its next steps.

A step is a form (CSRF) that publishes the same event as the JSON API, with
the person of the session as the actor. Whether the step was legal is the
ledger's decision: the page shows the decision and reason the journal
recorded for the event, never a guess of the API's.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.api.deps import PublisherDep, QueriesDep, WebSecretDep
from services.api.errors import Invalid, Problem, page_errors
from services.api.models import PathId, TransitionIn
from services.api.routes.projects import publish_transition
from services.api.routes.staff_pages import ROLE_ZH
from services.api.staff_auth import Actor, require
from services.api.web import check_csrf, render
from services.contracts import events as ev
from services.ledger.read import LedgerQueries, totals_view
from services.staff.domain.roles import Permission, allows

router = APIRouter(prefix="/staff/projects", tags=["pages", "staff"])

LIFECYCLE_KINDS = (
    "ProjectRegistered",
    "ProjectApproved",
    "FundraisingOpened",
    "FundraisingClosed",
    "ProgressReported",
    "CorrectionPublished",
    "ProjectSuspended",
    "ProjectClosed",
)
# Each step of the console: its event, the permission it needs, its label in both languages.
STEPS: dict[str, tuple[type[ev.Event], Permission, str, str]] = {
    "approve": (ev.ProjectApproved, Permission.APPROVE_PROJECT, "批准", "Approve"),
    "open-fundraising": (ev.FundraisingOpened, Permission.RUN_FUNDRAISING, "开始募捐", "Open fundraising"),
    "close-fundraising": (ev.FundraisingClosed, Permission.RUN_FUNDRAISING, "结束募捐", "Close fundraising"),
}
STEP_ERRORS = page_errors(
    {
        303: "published: on to the project's page, which shows the ledger's decision",
        403: "not allowed (logged), or the form's CSRF token does not match",
        404: "no such project",
        422: "a field is too long or not plain text",
    }
)

Viewer = Annotated[Actor, Depends(require(Permission.VIEW_CONSOLE))]
Approver = Annotated[Actor, Depends(require(Permission.APPROVE_PROJECT, project_id="project_id"))]
Fundraiser = Annotated[Actor, Depends(require(Permission.RUN_FUNDRAISING, project_id="project_id"))]


def _history(queries: LedgerQueries, project_id: str) -> list[dict[str, Any]]:
    """The project's lifecycle entries, newest first, as the journal recorded them."""
    rows = []
    for stored in queries.project_entries(project_id, LIFECYCLE_KINDS):
        record = stored.record
        rows.append(
            {
                "seq": stored.seq,
                "entry_id": record.get("entry_id"),
                "kind": record.get("kind"),
                "decision": record.get("decision"),
                "reason": record.get("reason", ""),
                "actor": (record.get("body") or {}).get("actor", ""),
            }
        )
    return rows[::-1]


@router.get("", response_class=HTMLResponse, responses=page_errors({403: "no access to the console"}))
def project_list(request: Request, actor: Viewer, queries: QueriesDep) -> HTMLResponse:
    return render(
        request,
        "staff_projects.html",
        person=actor.person,
        projects=[totals_view(p) for p in queries.projects()],
    )


@router.get(
    "/{project_id}",
    response_class=HTMLResponse,
    responses=page_errors(
        {403: "no access to the console", 404: "no such project", 422: "not the form of a project id"}
    ),
)
def project_page(request: Request, project_id: PathId, actor: Viewer, queries: QueriesDep) -> HTMLResponse:
    project = queries.project(project_id)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")
    person = actor.person
    assert person is not None  # pages take no machine client
    history = _history(queries, project_id)
    sent = request.query_params.get("sent")
    decided = next((h for h in history if sent and h["entry_id"] == sent), None)
    steps = [
        (path, zh, en)
        for path, (_, permission, zh, en) in STEPS.items()
        if allows(person, permission, project_id=project_id)
    ]
    return render(
        request,
        "staff_project.html",
        person=person,
        role_zh=ROLE_ZH[person.role],
        project=totals_view(project),
        history=history,
        sent=sent,
        decided=decided,
        steps=steps,
    )


async def _step(
    request: Request,
    step: str,
    project_id: str,
    actor: Actor,
    csrf: str,
    secret: bytes,
    publisher: PublisherDep,
    queries: QueriesDep,
    **fields: Any,
) -> Response:
    check_csrf(request, secret, csrf)
    event_type = STEPS[step][0]
    published = await publish_transition(project_id, event_type, actor, publisher, queries, **fields)
    return RedirectResponse(
        f"/staff/projects/{project_id}?sent={published['event_id']}", status.HTTP_303_SEE_OTHER
    )


@router.post("/{project_id}/approve", responses=STEP_ERRORS)
async def approve(
    request: Request,
    project_id: PathId,
    actor: Approver,
    secret: WebSecretDep,
    publisher: PublisherDep,
    queries: QueriesDep,
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    ref = f"APPROVAL-{project_id}"
    return await _step(
        request, "approve", project_id, actor, csrf, secret, publisher, queries, approval_ref=ref
    )


@router.post("/{project_id}/open-fundraising", responses=STEP_ERRORS)
async def open_fundraising(
    request: Request,
    project_id: PathId,
    actor: Fundraiser,
    secret: WebSecretDep,
    publisher: PublisherDep,
    queries: QueriesDep,
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    return await _step(request, "open-fundraising", project_id, actor, csrf, secret, publisher, queries)


@router.post("/{project_id}/close-fundraising", responses=STEP_ERRORS)
async def close_fundraising(
    request: Request,
    project_id: PathId,
    actor: Fundraiser,
    secret: WebSecretDep,
    publisher: PublisherDep,
    queries: QueriesDep,
    csrf: Annotated[str, Form(max_length=128)] = "",
    reason: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    # The same limits as the JSON API's TransitionIn: the event must pass the ledger's validation.
    try:
        checked = TransitionIn.model_validate({"reason": reason})
    except ValidationError as error:
        problems = [Problem(field="reason", problem=str(e["msg"])) for e in error.errors()]
        raise Invalid("the reason is not plain text", problems) from None
    return await _step(
        request,
        "close-fundraising",
        project_id,
        actor,
        csrf,
        secret,
        publisher,
        queries,
        reason=checked.reason,
    )
