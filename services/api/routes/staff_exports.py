"""Journal exports for accountants: a project's journal, or all projects', for a period, as CSV or XLSX.

CSV streams straight from the database cursor to the client. XLSX is written row by
row to a temporary file first (a workbook is a zip, finished only at its end), which
is sent and deleted. A project manager's audit right covers their own projects: the
all-projects export gives them those, and a project of someone else's is refused.
"""

from __future__ import annotations

import itertools
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from services.api.deps import QueriesDep, WebSecretDep
from services.api.errors import Problem, page_errors
from services.api.models import PathId
from services.api.staff_auth import Actor, require_page
from services.api.web import check_csrf, render
from services.ledger.read import JournalExport, LedgerQueries, Period, csv_chunks, parse_period, write_xlsx
from services.staff.domain.roles import SCOPED_ROLES, Permission, Person, Scope

router = APIRouter(prefix="/staff/audit", tags=["pages", "staff"], include_in_schema=False)

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
ALL = "*"  # the exports form's value for every project the person may see
DOWNLOAD_ERRORS = page_errors(
    {
        403: "no audit right, or not on this project (logged)",
        404: "no such project",
        422: "a date is not a date, or the last day is before the first: the exports form says which",
    }
)

Auditor = Annotated[Actor, Depends(require_page(Permission.AUDIT))]
ProjectAuditor = Annotated[Actor, Depends(require_page(Permission.AUDIT, project_id="project_id"))]


def _person(actor: Actor) -> Person:
    assert actor.person is not None  # pages take no machine client
    return actor.person


def visible_projects(person: Person) -> frozenset[str] | None:
    """The projects a person's audit right covers; None: all of them."""
    return person.projects if SCOPED_ROLES.get(person.role) is Scope.PROJECT else None


def _choices(queries: LedgerQueries, person: Person) -> list[tuple[str, str]]:
    """(project id, name) of the projects the person may export."""
    mine = visible_projects(person)
    return [
        (p.project_id, str(p.plan.get("name", p.project_id)))
        for p in queries.projects()
        if mine is None or p.project_id in mine
    ]


def _form(
    request: Request,
    actor: Actor,
    queries: LedgerQueries,
    form: dict[str, str],
    problems: list[Problem],
    status_code: int = status.HTTP_200_OK,
) -> HTMLResponse:
    person = _person(actor)
    return render(
        request,
        "staff_exports.html",
        status_code,
        person=person,
        scoped=visible_projects(person) is not None,
        projects=_choices(queries, person),
        form=form,
        problems=problems,
    )


@router.get("/exports", response_class=HTMLResponse, responses=page_errors({403: "no audit right"}))
def exports_form(request: Request, actor: Auditor, queries: QueriesDep) -> HTMLResponse:
    return _form(request, actor, queries, {"project": ALL, "format": "csv"}, [])


@router.post(
    "/exports",
    responses=page_errors(
        {
            303: "on to the download",
            403: "no audit right (logged), or the form's CSRF token does not match",
            422: "the form is shown again with each field's problem",
        }
    ),
)
async def choose_export(
    request: Request, actor: Auditor, secret: WebSecretDep, queries: QueriesDep
) -> Response:
    posted = await request.form()
    form = {k: v.strip() for k, v in posted.items() if isinstance(v, str) and len(v) <= 200}
    check_csrf(request, secret, form.get("csrf", ""))
    period, problems = parse_period(form.get("from"), form.get("to"))
    listed = [Problem(field=field, problem=problem) for field, problem in problems.items()]
    if form.get("format") not in FORMATS:
        listed.append(Problem(field="format", problem="请选择 CSV 或 XLSX · choose CSV or XLSX"))
    project = form.get("project", ALL)
    if project != ALL and project not in dict(_choices(queries, _person(actor))):
        listed.append(Problem(field="project", problem="没有此项目或无权查看 · no such project of yours"))
    if listed or period is None:
        return _form(request, actor, queries, form, listed, status.HTTP_422_UNPROCESSABLE_CONTENT)
    where = "" if project == ALL else f"/projects/{quote(project, safe='')}"
    query = urlencode({k: v for k, v in (("from", form.get("from")), ("to", form.get("to"))) if v})
    return RedirectResponse(
        f"/staff/audit{where}/journal.{form['format']}" + (f"?{query}" if query else ""),
        status.HTTP_303_SEE_OTHER,
    )


def _period(request: Request, actor: Actor, queries: LedgerQueries, project: str) -> Period | Response:
    """The period the query asks for, or the exports form with each date's problem (422)."""
    first, last = request.query_params.get("from"), request.query_params.get("to")
    period, problems = parse_period(first, last)
    if period is not None:
        return period
    form = {"project": project, "from": first or "", "to": last or "", "format": "csv"}
    listed = [Problem(field=field, problem=problem) for field, problem in problems.items()]
    return _form(request, actor, queries, form, listed, status.HTTP_422_UNPROCESSABLE_CONTENT)


def _attachment(stem: str, suffix: str) -> dict[str, str]:
    """Content-Disposition with an ASCII file name and the exact one as UTF-8 (RFC 6266)."""
    name = f"{stem}.{suffix}"
    ascii_name = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return {"Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}"}


def _download(
    queries: LedgerQueries, projects: frozenset[str] | None, period: Period, stem: str, suffix: str
) -> Response:
    lines = JournalExport(queries.engine).lines(projects, period)
    headers = _attachment(f"{stem}-{period.label()}", suffix)
    if suffix == "csv":
        chunks = csv_chunks(lines)
        # The first chunk is read here, so a database that cannot be reached is a 503, not a cut file.
        first = next(chunks)
        return StreamingResponse(_chain(first, chunks), media_type=FORMATS["csv"], headers=headers)
    fd, name = tempfile.mkstemp(prefix="journal-", suffix=".xlsx")
    os.close(fd)
    path = Path(name)
    try:
        write_xlsx(lines, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return FileResponse(
        path, media_type=FORMATS["xlsx"], headers=headers, background=BackgroundTask(path.unlink)
    )


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from itertools.chain((first,), rest)


@router.get("/projects/{project_id}/journal.csv", responses=DOWNLOAD_ERRORS)
@router.get("/projects/{project_id}/journal.xlsx", responses=DOWNLOAD_ERRORS)
def project_journal(
    request: Request, project_id: PathId, actor: ProjectAuditor, queries: QueriesDep
) -> Response:
    """The project's journal lines for the period (`from`, `to`: dates, both optional)."""
    if queries.project(project_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")
    period = _period(request, actor, queries, project_id)
    if isinstance(period, Response):
        return period
    return _download(queries, frozenset({project_id}), period, f"journal-{project_id}", _suffix(request))


@router.get("/journal.csv", responses=DOWNLOAD_ERRORS)
@router.get("/journal.xlsx", responses=DOWNLOAD_ERRORS)
def all_journal(request: Request, actor: Auditor, queries: QueriesDep) -> Response:
    """Every project's journal lines for the period; a project manager's own projects only."""
    period = _period(request, actor, queries, ALL)
    if isinstance(period, Response):
        return period
    mine = visible_projects(_person(actor))
    stem = "journal-all-projects" if mine is None else "journal-own-projects"
    return _download(queries, mine, period, stem, _suffix(request))


def _suffix(request: Request) -> str:
    return request.url.path.rsplit(".", 1)[1]
