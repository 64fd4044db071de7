"""The federation's overview for auditors: every project's state, money raised, spent and
available, its disclosure clock (overdue first, in red) and the journal's verification status,
sortable by each column on the server (`?sort=raised`, `?sort=-raised` for the largest first),
and the same table as a CSV (UTF-8 with a BOM, so spreadsheet programs show Chinese).

Permission.AUDIT: administrators and auditors see every project, a project manager only the
projects they are assigned to. The figures are the ledger's projections (project_totals), in
integer fen; the disclosure clock is services/ledger/domain/disclosure.py's.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, status
from fastapi.responses import HTMLResponse, Response
from starlette.routing import NoMatchFound

from services.api.deps import QueriesDep, VerificationDep
from services.api.errors import Problem, page_errors
from services.api.routes.pages import STATUS_ZH
from services.api.routes.staff_pages import ROLE_ZH
from services.api.staff_auth import Actor, require_page
from services.api.web import render
from services.ledger.read import (
    JournalVerification,
    LedgerQueries,
    ProjectStatus,
    ProjectTotals,
    VerificationStatus,
    as_text,
    is_overdue,
    next_disclosure_due,
    yuan,
)
from services.staff.domain.roles import Permission, Person, allows

router = APIRouter(prefix="/staff/audit", tags=["pages", "staff"], include_in_schema=False)

Auditor = Annotated[Actor, Depends(require_page(Permission.AUDIT))]
SortParam = Annotated[str, Query(max_length=20, description="a column, '-' before it for descending")]
ERRORS = page_errors({403: "no audit access (logged)", 422: "an unknown sort column: the page names it"})

# The other audit pages, linked while their routes exist (by route name: routes/staff_audit.py's
# closed-loop page, routes/staff_exports.py's journal downloads and its form).
PROJECT_PAGE = "project_audit"
EXPORTS = "all_journal"
EXPORT_LINKS = (
    ("/staff/audit/journal.csv", "全部项目账目 CSV", "All projects' journal (CSV)"),
    ("/staff/audit/journal.xlsx", "全部项目账目 XLSX", "All projects' journal (XLSX)"),
)
EXPORTS_PAGE = "exports_form"  # any period, one project or all, CSV or XLSX
CHINA = ZoneInfo("Asia/Shanghai")
VERIFICATION_ZH = {"verified": "已校验", "pending": "校验中", "failed": "校验失败"}


@dataclass(frozen=True, slots=True)
class Row:
    project_id: str
    name: str
    state: str
    currency: str
    raised_fen: int
    spent_fen: int
    available_fen: int
    disclosure_due: datetime | None
    disclosure_rule: str
    overdue: bool
    verification: str  # verified: every entry of the project checked; pending; failed


def _disclosure_order(row: Row) -> tuple[int, datetime]:
    """Overdue first, then the soonest due, then projects with nothing due."""
    rank = 0 if row.overdue else 1 if row.disclosure_due else 2
    return rank, row.disclosure_due or datetime.max.replace(tzinfo=UTC)


LIFE = [str(s) for s in ProjectStatus]  # states in the order of a project's life

# Each column: its heading (zh, en) and what it sorts by.
COLUMNS: dict[str, tuple[str, str, Callable[[Row], Any]]] = {
    "project": ("项目", "Project", lambda r: r.project_id),
    "state": ("状态", "State", lambda r: LIFE.index(r.state) if r.state in LIFE else len(LIFE)),
    "raised": ("已筹", "Raised", lambda r: (r.currency, r.raised_fen)),
    "spent": ("已拨付", "Spent", lambda r: (r.currency, r.spent_fen)),
    "available": ("可用", "Available", lambda r: (r.currency, r.available_fen)),
    "disclosure": ("信息公开", "Disclosure", _disclosure_order),
    "verification": ("账本校验", "Journal verified", lambda r: r.verification),
}
DEFAULT_SORT = "disclosure"


def overview_rows(
    projects: Iterable[ProjectTotals], person: Person, now: datetime, verified: VerificationStatus
) -> list[Row]:
    """The projects this person may audit, as the table shows them."""
    rows = []
    for p in projects:
        if not allows(person, Permission.AUDIT, project_id=p.project_id):
            continue
        due, rule = next_disclosure_due(p)
        if verified.state == "failed":
            verification = "failed"
        else:
            verification = "verified" if p.last_entry_seq <= verified.checked_seq else "pending"
        rows.append(
            Row(
                project_id=p.project_id,
                name=str(p.plan.get("name", p.project_id)),
                state=str(p.status),
                currency=p.currency,
                raised_fen=p.raised_fen,
                spent_fen=p.disbursed_fen,
                available_fen=p.fund_fen,
                disclosure_due=due,
                disclosure_rule=rule,
                overdue=is_overdue(p, now),
                verification=verification,
            )
        )
    return rows


def sorted_rows(rows: list[Row], sort: str) -> list[Row]:
    """Rows by a column (`-column`: descending), ties by project id; KeyError for no such column."""
    column = sort.removeprefix("-")
    key = COLUMNS[column][2]
    by_id = sorted(rows, key=lambda r: r.project_id)
    return sorted(by_id, key=key, reverse=sort.startswith("-"))


def totals(rows: Iterable[Row]) -> dict[str, dict[str, int]]:
    """Raised, spent and available summed per currency, in fen."""
    sums: dict[str, dict[str, int]] = {}
    for r in rows:
        s = sums.setdefault(r.currency, {"raised_fen": 0, "spent_fen": 0, "available_fen": 0})
        s["raised_fen"] += r.raised_fen
        s["spent_fen"] += r.spent_fen
        s["available_fen"] += r.available_fen
    return dict(sorted(sums.items()))


def _sort_problem(sort: str) -> list[Problem]:
    if sort.removeprefix("-") in COLUMNS:
        return []
    known = ", ".join(COLUMNS)
    return [Problem(field="sort", problem=f"没有这一列 · no column {sort!r} to sort by; one of: {known}")]


async def _rows(
    queries: LedgerQueries, verification: JournalVerification, person: Person, sort: str
) -> tuple[list[Row], VerificationStatus]:
    verified = await asyncio.to_thread(verification.status)
    projects = await asyncio.to_thread(queries.projects)
    return sorted_rows(overview_rows(projects, person, datetime.now(UTC), verified), sort), verified


def _routed(request: Request, name: str, **params: str) -> bool:
    try:
        request.app.url_path_for(name, **params)
    except NoMatchFound:
        return False
    return True


@router.get("", response_class=HTMLResponse, responses=ERRORS)
async def overview(
    request: Request,
    actor: Auditor,
    queries: QueriesDep,
    verification: VerificationDep,
    sort: SortParam = DEFAULT_SORT,
) -> HTMLResponse:
    person = actor.person
    assert person is not None  # pages take no machine client
    problems = _sort_problem(sort)
    rows, verified = await _rows(queries, verification, person, DEFAULT_SORT if problems else sort)
    today = datetime.now(CHINA).date()  # the exports' period: this year so far
    return render(
        request,
        "staff_audit_overview.html",
        status.HTTP_422_UNPROCESSABLE_CONTENT if problems else status.HTTP_200_OK,
        person=person,
        role_zh=ROLE_ZH[person.role],
        rows=rows,
        totals=totals(rows),
        sort=DEFAULT_SORT if problems else sort,
        columns={name: (zh, en) for name, (zh, en, _) in COLUMNS.items()},
        problems=problems,
        verified=verified,
        status_zh=STATUS_ZH,
        verification_zh=VERIFICATION_ZH,
        project_pages=_routed(request, PROJECT_PAGE, project_id="p"),
        exports=EXPORT_LINKS if _routed(request, EXPORTS) else (),
        exports_page=_routed(request, EXPORTS_PAGE),
        year_start=today.replace(month=1, day=1).isoformat(),
        today=today.isoformat(),
    )


CSV_HEADER = (
    "project_id 项目编号",
    "name 项目名称",
    "state 状态",
    "currency 币种",
    "raised_fen 已筹(分)",
    "spent_fen 已拨付(分)",
    "available_fen 可用(分)",
    "raised 已筹",
    "spent 已拨付",
    "available 可用",
    "disclosure_due 下次公开截止",
    "disclosure_overdue 逾期",
    "disclosure_rule 公开规则",
    "journal_verified 账本校验",
    "journal_checked_seq 校验至序号",
)


def overview_csv(rows: Iterable[Row], verified: VerificationStatus) -> bytes:
    out = io.StringIO()
    out.write("\ufeff")  # so spreadsheet programs read UTF-8 and show Chinese
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for r in rows:
        writer.writerow(
            (
                as_text(r.project_id),  # free text a spreadsheet must not run as a formula
                as_text(r.name),
                r.state,
                r.currency,
                r.raised_fen,
                r.spent_fen,
                r.available_fen,
                yuan(r.raised_fen),
                yuan(r.spent_fen),
                yuan(r.available_fen),
                r.disclosure_due.date().isoformat() if r.disclosure_due else "",
                "yes" if r.overdue else "no",
                r.disclosure_rule,
                r.verification,
                verified.checked_seq,
            )
        )
    return out.getvalue().encode("utf-8")


@router.get(
    "/overview.csv",
    response_class=Response,
    responses={
        **ERRORS,
        200: {"content": {"text/csv": {}}, "description": "the overview table, UTF-8 with a BOM"},
    },
)
async def overview_csv_download(
    actor: Auditor, queries: QueriesDep, verification: VerificationDep, sort: SortParam = DEFAULT_SORT
) -> Response:
    person = actor.person
    assert person is not None
    problems = _sort_problem(sort)
    if problems:
        return Response(problems[0].problem, status.HTTP_422_UNPROCESSABLE_CONTENT, media_type="text/plain")
    rows, verified = await _rows(queries, verification, person, sort)
    day = datetime.now(UTC).date().isoformat()
    return Response(
        overview_csv(rows, verified),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="audit-overview-{day}.csv"'},
    )
