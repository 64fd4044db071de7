"""A project's disclosure report for everyone: the Charity Law asks for public disclosure, and
the report holds nothing the public project page and a donor's "where my gift went" do not
already show (the plan, totals, payees and purposes of disbursements, progress reports and
corrections); no donor appears in it. The same page and PDF as the staff console's."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.api.deps import QueriesDep
from services.api.disclosure_view import disclosure_context, disclosure_of, disclosure_pdf_response
from services.api.errors import INVALID, page_errors
from services.api.models import PathId
from services.api.web import render

router = APIRouter(tags=["pages"], include_in_schema=True)
ERRORS = page_errors({404: "no project with this id", **INVALID})


@router.get("/projects/{project_id}/disclosure", response_class=HTMLResponse, responses=ERRORS)
async def disclosure_page(request: Request, project_id: PathId, queries: QueriesDep) -> HTMLResponse:
    """The project's disclosure report, styled for print."""
    report = await disclosure_of(queries, project_id)
    return render(request, "disclosure.html", staff=False, **disclosure_context(report))


@router.get(
    "/projects/{project_id}/disclosure.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}, "description": "the report as a PDF"}, **ERRORS},
)
async def disclosure_pdf_download(project_id: PathId, queries: QueriesDep) -> Response:
    """The project's disclosure report as a PDF (A4)."""
    return await disclosure_pdf_response(queries, project_id)
