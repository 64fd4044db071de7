"""Statements for auditors: a project's statement for a period, its disclosure report (a print
page and a PDF), and a donor's year-end statement produced from receipt numbers.

All need Permission.AUDIT: administrators and auditors everywhere, a project manager on their
own projects (the donor statement shows a manager only gifts to those). Figures are read from
the journal through the read side's ProjectBooks, never from anything the page computes on
its own. A donor's statement is a read of personal data (which receipts one person holds), so
each one produced goes to the access log with the receipts it named.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRouter

from services.api.deps import DonorStoreDep, QueriesDep, WebSecretDep
from services.api.disclosure_pdf import CHINA, IN_LABELS, OUT_LABELS, china_time
from services.api.disclosure_view import disclosure_context, disclosure_of, disclosure_pdf_response
from services.api.donor_statements import NOT_YOURS, WRONG, DonorStatement, donor_statement, parse_request
from services.api.errors import INVALID, Problem, page_errors
from services.api.models import PathId
from services.api.staff_auth import Actor, StaffAuthDep, require_page
from services.api.web import check_csrf, render
from services.ledger.read import Period, ProjectBooks, parse_period
from services.staff.domain.roles import Permission, allows

router = APIRouter(prefix="/staff/audit", tags=["pages", "staff"], include_in_schema=False)

ProjectAuditor = Annotated[Actor, Depends(require_page(Permission.AUDIT, project_id="project_id"))]
Auditor = Annotated[Actor, Depends(require_page(Permission.AUDIT))]
PROJECT_ERRORS = page_errors(
    {403: "no audit access to this project (logged)", 404: "no such project", **INVALID}
)


def _period(typed_from: str, typed_to: str) -> tuple[Period | None, list[Problem]]:
    """The period typed (China calendar days, both included), or each field's problem; a day
    left empty is 1 January of the period's year, or today (so a first day after today is
    refused, as a last day before the first is)."""
    period, problems = parse_period(typed_from, typed_to)
    if period is None:
        return None, [Problem(field=field, problem=problem) for field, problem in problems.items()]
    last = period.last or datetime.now(CHINA).date()
    if period.first is not None and period.first > last:  # only when the last day was left empty
        return None, [Problem(field="from", problem="开始日期晚于今天 · the first day is after today")]
    return Period(period.first or last.replace(month=1, day=1), last), []


@router.get("/projects/{project_id}/statement", response_class=HTMLResponse, responses=PROJECT_ERRORS)
async def project_statement(
    request: Request,
    project_id: PathId,
    actor: ProjectAuditor,
    queries: QueriesDep,
    typed_from: Annotated[str, Query(alias="from", max_length=10)] = "",
    typed_to: Annotated[str, Query(alias="to", max_length=10)] = "",
) -> HTMLResponse:
    """Opening balance, money in by kind, refunds, money out and the closing balance of a
    period, and whether they reconcile to the fen."""
    period, problems = _period(typed_from, typed_to)
    project = await asyncio.to_thread(queries.project, project_id)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")
    statement = None
    if period is not None and period.start is not None and period.end is not None:
        books = ProjectBooks(queries.engine)
        statement = await asyncio.to_thread(books.statement, project_id, period.start, period.end)
    return render(
        request,
        "staff_statement.html",
        status.HTTP_422_UNPROCESSABLE_CONTENT if problems else status.HTTP_200_OK,
        person=actor.person,
        project_id=project_id,
        project_name=project.plan.get("name", project_id),
        first=str(period.first) if period else typed_from,
        last=str(period.last) if period else typed_to,
        s=statement,
        problems=problems,
        in_labels=IN_LABELS,
        out_labels=OUT_LABELS,
        local=china_time,
    )


@router.get("/projects/{project_id}/disclosure", response_class=HTMLResponse, responses=PROJECT_ERRORS)
async def disclosure_page(
    request: Request, project_id: PathId, actor: ProjectAuditor, queries: QueriesDep
) -> HTMLResponse:
    """The disclosure report as a page styled for print (static/print.css)."""
    report = await disclosure_of(queries, project_id)
    return render(request, "disclosure.html", person=actor.person, staff=True, **disclosure_context(report))


@router.get(
    "/projects/{project_id}/disclosure.pdf",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {}}, "description": "the report as a PDF"},
        **page_errors({403: "no audit access to this project (logged)", 404: "no such project", **INVALID}),
    },
)
async def disclosure_pdf_download(project_id: PathId, actor: ProjectAuditor, queries: QueriesDep) -> Response:
    return await disclosure_pdf_response(queries, project_id)


@router.get("/donor-statement", response_class=HTMLResponse, responses=page_errors({403: "no audit access"}))
def staff_donor_statement_form(request: Request, actor: Auditor) -> HTMLResponse:
    year = str(datetime.now(CHINA).year)
    return render(
        request, "staff_donor_statement.html", person=actor.person, receipts="", year=year, problems=[]
    )


@router.post(
    "/donor-statement",
    response_class=HTMLResponse,
    responses=page_errors(
        {
            403: "no audit access (logged), a gift to a project the manager does not run, or bad CSRF",
            404: "a receipt number the donor store does not hold: the form again, naming it",
            409: "a receipt whose gift the ledger has not recorded yet: the form again, naming it",
            422: "a line that is not a receipt number, or a bad year: the form again, naming it",
        }
    ),
)
async def staff_donor_statement(
    request: Request,
    actor: Auditor,
    auth: StaffAuthDep,
    secret: WebSecretDep,
    store: DonorStoreDep,
    queries: QueriesDep,
    receipts: Annotated[str, Form(max_length=2000)] = "",
    year: Annotated[str, Form(max_length=4)] = "",
    csrf: Annotated[str, Form(max_length=128)] = "",
) -> HTMLResponse:
    """A donor's year-end statement from receipt numbers (no codes: staff send it to the donor);
    a manager sees only gifts to their own projects. Each one produced is in the access log."""
    check_csrf(request, secret, csrf)
    person = actor.person
    assert person is not None  # pages take no machine client

    def page(code: int, problems: list[Problem], statement: DonorStatement | None = None) -> HTMLResponse:
        return render(
            request,
            "staff_donor_statement.html",
            code,
            person=person,
            receipts=receipts,
            year=year,
            problems=problems,
            s=statement,
        )

    asked, wanted_year, problems = parse_request(receipts, year, with_codes=False)
    if problems:
        return page(status.HTTP_422_UNPROCESSABLE_CONTENT, problems)
    statement, problems = await asyncio.to_thread(
        donor_statement,
        store,
        queries,
        asked,
        wanted_year,
        lambda project_id: allows(person, Permission.AUDIT, project_id=project_id),
    )
    named = " ".join(a.receipt_no for a in asked)
    decision = "refused" if problems else "allowed"
    await asyncio.to_thread(
        auth.log, request, actor.name, "personal_data", decision, f"donor statement {year}: {named}"
    )
    if problems:
        return page(_status_of(problems), problems)
    return page(status.HTTP_200_OK, [], statement)


def _status_of(problems: list[Problem]) -> int:
    """The answer for a statement's problems: the most telling of them."""
    if any(p.field.endswith(WRONG) for p in problems):
        return status.HTTP_404_NOT_FOUND
    if any(p.field.endswith(NOT_YOURS) for p in problems):
        return status.HTTP_403_FORBIDDEN
    return status.HTTP_409_CONFLICT
