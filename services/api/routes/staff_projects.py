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
from services.api.models import PathId, ProjectIn, TransitionIn
from services.api.routes.projects import publish_registration, publish_transition
from services.api.routes.staff_pages import ROLE_ZH
from services.api.staff_auth import Actor, StaffAuthDep, require_page
from services.api.web import check_csrf, render
from services.contracts import events as ev
from services.contracts.validation import MAX_AMOUNT_FEN
from services.donors.domain.amounts import AmountRefused, AmountRules
from services.ledger.read import LedgerQueries, totals_view
from services.staff.domain.roles import Permission, allows

router = APIRouter(prefix="/staff/projects", tags=["pages", "staff"], include_in_schema=False)

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

Registrar = Annotated[Actor, Depends(require_page(Permission.REGISTER_PROJECT))]
Viewer = Annotated[Actor, Depends(require_page(Permission.VIEW_CONSOLE))]
Approver = Annotated[Actor, Depends(require_page(Permission.APPROVE_PROJECT, project_id="project_id"))]
Fundraiser = Annotated[Actor, Depends(require_page(Permission.RUN_FUNDRAISING, project_id="project_id"))]


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


# The plan's fields as the form names them (the goal is typed in yuan).
PLAN_FIELDS = (
    "project_id",
    "name",
    "name_en",
    "organisation",
    "certificate_no",
    "purpose",
    "goal_yuan",
    "starts_on",
    "ends_on",
    "beneficiaries",
    "use_of_funds",
    "cost_cap_percent",
    "leftover_handling",
)


@router.get("/new", response_class=HTMLResponse, responses=page_errors({403: "may not register projects"}))
def registration_form(request: Request, actor: Registrar) -> HTMLResponse:
    return render(request, "staff_register.html", person=actor.person, plan={}, problems=[])


def _plan_of(form: dict[str, str]) -> tuple[ProjectIn | None, list[Problem]]:
    """The form's plan, or what is wrong with it, field by field."""
    problems: list[Problem] = []
    values: dict[str, Any] = {k: form[k].strip() for k in PLAN_FIELDS if k in form}
    try:
        values["goal_fen"] = AmountRules(MAX_AMOUNT_FEN).parse_yuan(values.pop("goal_yuan", ""))
    except AmountRefused as refused:
        problems.append(Problem(field="goal_yuan", problem=str(refused)))
    percent = values.pop("cost_cap_percent", "") or "10"
    if percent.isdigit() and int(percent) <= 100:
        values["cost_cap_bp"] = int(percent) * 100
    else:
        problems.append(Problem(field="cost_cap_percent", problem="0-100 的整数 · a whole number 0-100"))
    values["name_en"] = values.get("name_en") or None
    try:
        plan = ProjectIn.model_validate(values)
    except ValidationError as error:
        for e in error.errors():
            where = ".".join(str(part) for part in e["loc"]) or "plan"
            problems.append(Problem(field=where, problem=str(e["msg"])))
        return None, problems
    return (None if problems else plan), problems


@router.post(
    "",
    responses=page_errors(
        {
            303: "published: on to the project's page, which shows the ledger's decision",
            403: "may not register projects (logged), or the form's CSRF token does not match",
            409: "a project with this id is already registered",
            422: "the form is shown again with each field's problem",
        }
    ),
)
async def register(
    request: Request,
    actor: Registrar,
    secret: WebSecretDep,
    publisher: PublisherDep,
    queries: QueriesDep,
    auth: StaffAuthDep,
) -> Response:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str) and len(v) <= 4000}
    check_csrf(request, secret, fields.get("csrf", ""))
    plan, problems = _plan_of(fields)
    if plan is None:
        return render(
            request,
            "staff_register.html",
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            person=actor.person,
            plan=fields,
            problems=problems,
        )
    published = await publish_registration(plan, actor, publisher, queries, auth)
    return RedirectResponse(
        f"/staff/projects/{plan.project_id}?sent={published['event_id']}", status.HTTP_303_SEE_OTHER
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
    sent = request.query_params.get("sent")
    if project is None and not sent:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")
    # Just registered: the ledger may not have applied it yet, and the page says so.
    shown = (
        totals_view(project)
        if project is not None
        else {
            "project_id": project_id,
            "name": project_id,
            "status": "—",
            "organisation": "",
            "certificate_no": "",
        }
    )
    person = actor.person
    assert person is not None  # pages take no machine client
    history = _history(queries, project_id)
    decided = next((h for h in history if sent and h["entry_id"] == sent), None)
    steps = [
        (path, zh, en)
        for path, (_, permission, zh, en) in STEPS.items()
        if project is not None and allows(person, permission, project_id=project_id)
    ]
    return render(
        request,
        "staff_project.html",
        person=person,
        role_zh=ROLE_ZH[person.role],
        project=shown,
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
