"""Public HTML pages: the federation's project list with live totals."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from services.api.deps import QueriesDep
from services.api.errors import errors
from services.ledger.read import Money, totals_view

router = APIRouter(tags=["pages"])
templates = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")
templates.env.filters["yuan"] = lambda fen, currency="CNY": Money(int(fen), currency).format_yuan()

STATUS_ZH = {
    "registered": "已备案",
    "approved": "已批准",
    "fundraising": "募捐中",
    "fundraising_closed": "募捐结束",
    "executing": "执行中",
    "suspended": "已暂停",
    "closed": "已结项",
}


@router.get("/", response_class=HTMLResponse, responses=errors({}, json_route=False))
def home(request: Request, queries: QueriesDep) -> HTMLResponse:
    projects = [totals_view(p) for p in queries.projects()]
    return templates.TemplateResponse(request, "home.html", {"projects": projects, "status_zh": STATUS_ZH})
