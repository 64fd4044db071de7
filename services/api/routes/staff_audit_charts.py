"""The closed-loop page's charts: money in and out over time, gifts per day by channel, and the
flow from channels through the project to its payees.

The browser draws them (Apache ECharts, vendored by `make vendor`, served from /static/vendor)
from one JSON document, `charts.json`; each chart's text equivalent is a CSV (UTF-8 with a BOM)
and, on the charts' own page, a table under it. Figures are summed by the database
(services/ledger/read ChartQueries) up to the closed-loop page's cut: `?as_of=` means what it
means there (routes/staff_audit.py). Administrators and auditors see every project, a project
manager only their own (Permission.AUDIT).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response

from services.api.deps import QueriesDep
from services.api.errors import Problem, page_errors
from services.api.models import PathId
from services.api.routes.staff_audit import parse_as_of
from services.api.staff_auth import Actor, require_page
from services.api.web import render
from services.ledger.read import (
    ChartData,
    ChartQueries,
    ChartTable,
    LedgerQueries,
    ProjectAudit,
    cumulative,
    flow,
    tables,
)
from services.staff.domain.roles import Permission

router = APIRouter(prefix="/staff/audit/projects", tags=["pages", "staff"], include_in_schema=False)

Auditor = Annotated[Actor, Depends(require_page(Permission.AUDIT, project_id="project_id"))]
AsOf = Annotated[str, Query(max_length=64, description="YYYY-MM-DD or an ISO instant with its zone")]
ERRORS = page_errors(
    {
        403: "not an auditor or administrator, nor this project's manager (logged)",
        404: "no such project",
        422: "as_of is neither a date nor an instant with its time zone",
    }
)
CHART_NAMES = ("cumulative", "gifts", "flow")


@dataclass(frozen=True)
class Charts:
    """A project's chart figures at the closed-loop page's cut."""

    data: ChartData
    currency: str
    as_of: datetime | None


async def get_chart_queries(request: Request) -> ChartQueries:
    charts: ChartQueries = request.app.state.charts
    return charts


ChartsDep = Annotated[ChartQueries, Depends(get_chart_queries)]


def _charts(queries: LedgerQueries, charts: ChartQueries, project_id: str, as_of: str) -> Charts:
    """The figures, or 404 for an unknown project, 422 for an `as_of` that is not a time."""
    try:
        instant = parse_as_of(as_of)
    except ValueError as refused:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(refused)) from None
    project = queries.project(project_id)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")
    cut = ProjectAudit(queries.engine).cut(instant)
    return Charts(charts.chart_data(project_id, cut), project.currency, instant)


def document(charts: Charts) -> dict[str, Any]:
    """The three series as charts.json carries them; amounts in integer fen."""
    data = charts.data
    days = sorted({g.day for g in data.gifts})
    column = {day: i for i, day in enumerate(days)}
    channels: dict[str, dict[str, Any]] = {}
    for g in data.gifts:
        found = channels.setdefault(
            g.channel.key,
            {
                "key": g.channel.key,
                "label_zh": g.channel.label_zh,
                "label_en": g.channel.label_en,
                "count": [0] * len(days),
                "gross_fen": [0] * len(days),
            },
        )
        found["count"][column[g.day]] += g.count
        found["gross_fen"][column[g.day]] += g.gross_fen
    nodes, links = flow(data)
    return {
        "project_id": data.project_id,
        "currency": charts.currency,
        "as_of": charts.as_of.isoformat() if charts.as_of else None,
        "cut_seq": data.cut_seq,
        "time_zone": data.time_zone,
        "cumulative": [
            {
                "day": r.day.isoformat(),
                "in_fen": r.in_fen,
                "out_fen": r.out_fen,
                "disbursed_fen": r.disbursed_fen,
                "refunded_fen": r.refunded_fen,
                "leftover_fen": r.leftover_fen,
                "balance_fen": r.balance_fen,
            }
            for r in cumulative(data.flows)
        ],
        "gifts": {"days": [d.isoformat() for d in days], "channels": list(channels.values())},
        "flow": {
            "nodes": [{"id": n.id, "label_zh": n.label_zh, "label_en": n.label_en} for n in nodes],
            "links": [{"source": k.source, "target": k.target, "amount_fen": k.amount_fen} for k in links],
        },
    }


@router.get("/{project_id}/charts", response_class=HTMLResponse, responses=ERRORS)
async def charts_page(
    request: Request,
    project_id: PathId,
    actor: Auditor,
    queries: QueriesDep,
    chart_queries: ChartsDep,
    as_of: AsOf = "",
) -> HTMLResponse:
    """The charts on a page of their own, each with its table."""
    try:
        charts = await asyncio.to_thread(_charts, queries, chart_queries, project_id, as_of)
    except HTTPException as refused:
        if refused.status_code != status.HTTP_422_UNPROCESSABLE_CONTENT:
            raise
        problems = [Problem(field="as_of", problem=str(refused.detail))]
        return render(
            request,
            "staff_audit_charts.html",
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            person=actor.person,
            project_id=project_id,
            as_of_text=as_of,
            problems=problems,
            chart_tables={},
        )
    return render(
        request,
        "staff_audit_charts.html",
        person=actor.person,
        project_id=project_id,
        as_of_text=as_of,
        problems=[],
        as_of=charts.as_of,
        cut_seq=charts.data.cut_seq,
        chart_tables=tables(charts.data),
    )


@router.get("/{project_id}/charts.json", responses=ERRORS)
async def charts_json(
    project_id: PathId, actor: Auditor, queries: QueriesDep, chart_queries: ChartsDep, as_of: AsOf = ""
) -> JSONResponse:
    """The three series in one document, for the page's script."""
    charts = await asyncio.to_thread(_charts, queries, chart_queries, project_id, as_of)
    return JSONResponse(document(charts), headers={"Cache-Control": "no-store"})


def _add_csv(name: str) -> None:
    async def chart_csv(
        project_id: PathId, actor: Auditor, queries: QueriesDep, chart_queries: ChartsDep, as_of: AsOf = ""
    ) -> Response:
        charts = await asyncio.to_thread(_charts, queries, chart_queries, project_id, as_of)
        table: ChartTable = tables(charts.data)[name]
        return Response(
            table.csv(),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{project_id}-{name}.csv"',
                "Cache-Control": "no-store",
            },
        )

    chart_csv.__name__ = chart_csv.__qualname__ = f"{name}_csv"
    router.get(f"/{{project_id}}/charts/{name}.csv", responses=ERRORS)(chart_csv)


for _name in CHART_NAMES:
    _add_csv(_name)
