"""Public HTML pages about projects: the list with live totals, and each project's disclosure."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from services.api.deps import QueriesDep
from services.api.errors import INVALID, page_errors
from services.api.models import PathId
from services.api.web import render
from services.ledger.read import totals_view

router = APIRouter(tags=["pages"])

STATUS_ZH = {
    "registered": "已备案",
    "approved": "已批准",
    "fundraising": "募捐中",
    "fundraising_closed": "募捐结束",
    "executing": "执行中",
    "suspended": "已暂停",
    "closed": "已结项",
}
REPORT_KINDS = {
    "ProgressReported": ("进展报告 · Progress", "summary"),
    "CorrectionPublished": ("更正 · Correction", "note"),
}


@router.get("/", response_class=HTMLResponse, responses=page_errors({}))
def home(request: Request, queries: QueriesDep) -> HTMLResponse:
    projects = [totals_view(p) for p in queries.projects()]
    return render(request, "home.html", projects=projects, status_zh=STATUS_ZH)


@router.get(
    "/projects/{project_id}",
    response_class=HTMLResponse,
    responses=page_errors({404: "no project with this id", **INVALID}),
)
def project_page(request: Request, project_id: PathId, queries: QueriesDep) -> HTMLResponse:
    """What the Charity Law asks a public fundraising to disclose, before anyone pays."""
    project = queries.project(project_id)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")
    view = totals_view(project)
    reports: list[dict[str, Any]] = []
    for stored in queries.project_entries(project_id, kinds=REPORT_KINDS):
        entry = stored.entry
        if entry is None or entry.kind not in REPORT_KINDS:
            continue
        label, text_field = REPORT_KINDS[entry.kind]
        reports.append(
            {
                "kind_label": label,
                "effective_at": entry.effective_at.date().isoformat(),
                "text": entry.body.get(text_field, ""),
            }
        )
    return render(
        request,
        "project.html",
        p=view,
        plan=project.plan,
        reports=reports,
        disclosure_due=view["disclosure_due"],
        status_zh=STATUS_ZH,
    )
