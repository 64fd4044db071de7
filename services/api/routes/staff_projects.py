"""The console's project pages: each project's state, what the ledger decided, and its next steps.

A step is a form (CSRF) that publishes the same event as the JSON API, with
the person of the session as the actor. Whether the step was legal is the
ledger's decision: the page shows the decision and reason the journal
recorded for the event, never a guess of the API's.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.api.deps import PublisherDep, QueriesDep, WebSecretDep
from services.api.errors import Invalid, Problem, page_errors
from services.api.models import PathId, ProjectIn, TransitionIn
from services.api.routes.projects import LATER_STEPS, publish_registration, publish_transition
from services.api.routes.staff_pages import ROLE_ZH
from services.api.staff_auth import Actor, StaffAuthDep, require_page
from services.api.web import check_csrf, render
from services.contracts import events as ev
from services.contracts.validation import MAX_AMOUNT_FEN
from services.donors.domain.amounts import AmountRefused, AmountRules
from services.ledger.read import LEFTOVER_DISPOSITIONS, LedgerQueries, totals_view
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
    "ProjectResumed",
    "ProjectClosed",
)
# Each step of the console: its event, the permission it needs, its label in both languages.
STEPS: dict[str, tuple[type[ev.Event], Permission, str, str]] = {
    "approve": (ev.ProjectApproved, Permission.APPROVE_PROJECT, "批准", "Approve"),
    "open-fundraising": (ev.FundraisingOpened, Permission.RUN_FUNDRAISING, "开始募捐", "Open fundraising"),
    "close-fundraising": (ev.FundraisingClosed, Permission.RUN_FUNDRAISING, "结束募捐", "Close fundraising"),
}
# The later steps take the JSON API's bodies (LATER_STEPS) as forms: their labels.
LATER_LABELS = {
    "report-progress": ("发布进展报告", "Publish a progress report"),
    "publish-correction": ("发布更正", "Publish a correction"),
    "suspend": ("暂停项目", "Suspend the project"),
    "resume": ("恢复项目", "Resume the project"),
    "close": ("结项", "Close the project"),
}
assert set(LATER_LABELS) == set(LATER_STEPS), "a step of the JSON API has no form"
STEPS.update(
    {path: (step.event_type, step.permission, *LATER_LABELS[path]) for path, step in LATER_STEPS.items()}
)
# The leftover dispositions the ledger accepts, as the closing form names them.
DISPOSITION_LABELS = {
    "none": ("无剩余资金", "No funds left over"),
    "return_to_donors": ("退还捐赠人", "Return to the donors"),
    "transfer_to_project": ("转入其他募捐中的项目", "Transfer to another fundraising project"),
}
assert set(DISPOSITION_LABELS) == LEFTOVER_DISPOSITIONS, "a disposition the ledger accepts has no label"
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
        body = record.get("body") or {}
        rows.append(
            {
                "seq": stored.seq,
                "entry_id": record.get("entry_id"),
                "kind": record.get("kind"),
                "decision": record.get("decision"),
                "reason": record.get("reason", ""),
                "actor": body.get("actor", ""),
                "body": body,
            }
        )
    seqs = {row["entry_id"]: row["seq"] for row in rows}
    for row in rows:
        row["detail"] = _detail(row.pop("body"), seqs)
    return rows[::-1]


def _detail(body: dict[str, Any], seqs: dict[str, int]) -> str:
    """What the person wrote with the step: a report, a note (and the entry it corrects), a reason."""
    if "corrects_event_id" in body:
        corrected = body["corrects_event_id"]
        return f"{body.get('note', '')} (→ #{seqs.get(corrected, corrected)})"
    if "leftover_disposition" in body:
        target = body.get("leftover_target_project_id")
        return str(body["leftover_disposition"]) + (f" → {target}" if target else "")
    return str(body.get("summary") or body.get("reason") or "")


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
    "filing_no",
    "area",
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


def _problems_of(error: ValidationError, whole: str) -> list[Problem]:
    """Each field's problem; `whole` names a rule across fields."""
    return [
        Problem(field=".".join(str(part) for part in e["loc"]) or whole, problem=str(e["msg"]))
        for e in error.errors()
    ]


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
    for optional in ("name_en", "area", "filing_no"):
        values[optional] = values.get(optional) or None
    try:
        plan = ProjectIn.model_validate(values)
    except ValidationError as error:
        return None, problems + _problems_of(error, "plan")
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
    return _project_page(request, project_id, actor, queries)


def _project_page(
    request: Request,
    project_id: str,
    actor: Actor,
    queries: LedgerQueries,
    status_code: int = status.HTTP_200_OK,
    problems: list[Problem] | None = None,
    form: dict[str, str] | None = None,
    step: str = "",
) -> HTMLResponse:
    """The project's page; after a refused form, with each field's problem and what was typed."""
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
    # Where leftover funds may go: another project that is fundraising, in the same currency.
    targets = [
        totals_view(p)
        for p in (queries.projects() if any(path == "close" for path, _, _ in steps) else ())
        if p.project_id != project_id
        and str(p.status) == "fundraising"
        and p.currency == shown.get("currency")
    ]
    return render(
        request,
        "staff_project.html",
        status_code,
        person=person,
        role_zh=ROLE_ZH[person.role],
        project=shown,
        plan=project.plan if project is not None else {},
        history=history,
        sent=sent,
        decided=decided,
        steps=steps,
        dispositions=DISPOSITION_LABELS,
        targets=targets,
        problems=problems or [],
        form=form or {},
        form_step=step,
        may_audit=allows(person, Permission.AUDIT, project_id=project_id),
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


async def _form_step(
    request: Request,
    step: str,
    project_id: str,
    actor: Actor,
    secret: bytes,
    publisher: PublisherDep,
    queries: QueriesDep,
) -> Response:
    """A step with a form: checked as the JSON API checks its body, then published; a bad form
    comes back (422) with each field's problem and nothing published."""
    form = await request.form()
    fields = {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != "csrf" and len(v) <= 4000}
    csrf = form.get("csrf")
    check_csrf(request, secret, csrf if isinstance(csrf, str) else "")
    if await asyncio.to_thread(queries.project, project_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")
    later = LATER_STEPS[step]
    model = later.body
    # A field left empty is absent if the step may go without it (a select's empty choice).
    values = {
        k: v if v or model.model_fields[k].is_required() else None
        for k, v in fields.items()
        if k in model.model_fields
    }
    try:
        body = model.model_validate(values)
    except ValidationError as error:
        problems = _problems_of(error, later.across or step)
    else:
        problems = await asyncio.to_thread(later.problems, queries, project_id, body)
    if problems:
        return await asyncio.to_thread(
            _project_page,
            request,
            project_id,
            actor,
            queries,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            problems,
            fields,
            step,
        )
    published = await publish_transition(
        project_id, later.event_type, actor, publisher, queries, **body.model_dump()
    )
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


FORM_STEP_ERRORS = page_errors(
    {
        303: "published: on to the project's page, which shows the ledger's decision",
        403: "not allowed (logged), or the form's CSRF token does not match",
        404: "no such project",
        422: "the project's page again, with each field's problem; nothing published",
    }
)


def _add_form_step(step: str, permission: Permission) -> None:
    async def take(
        request: Request,
        project_id: PathId,
        actor: Actor,
        secret: WebSecretDep,
        publisher: PublisherDep,
        queries: QueriesDep,
    ) -> Response:
        return await _form_step(request, step, project_id, actor, secret, publisher, queries)

    # The step's own permission, which FastAPI reads from the annotation.
    take.__annotations__["actor"] = Annotated[
        Actor, Depends(require_page(permission, project_id="project_id"))
    ]
    take.__name__ = take.__qualname__ = step.replace("-", "_")
    router.post(f"/{{project_id}}/{step}", responses=FORM_STEP_ERRORS)(take)


for _path, _later in LATER_STEPS.items():
    _add_form_step(_path, _later.permission)
