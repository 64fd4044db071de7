"""A project's disclosure report for the pages that show it (the staff console's and the public
one): read from the ledger's read side at this instant, its page's context, and its PDF."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException, status
from fastapi.responses import Response

from services.api.disclosure_pdf import (
    CHINA,
    IN_LABELS,
    OUT_LABELS,
    PLAN_ROWS,
    china_time,
    disclosure_pdf,
    plan_value,
)
from services.api.routes.pages import STATUS_ZH
from services.ledger.read import DisclosureReport, LedgerQueries, ProjectBooks


async def disclosure_of(queries: LedgerQueries, project_id: str) -> DisclosureReport:
    """The report as the journal stands now; 404 for an unknown project."""
    report = await asyncio.to_thread(ProjectBooks(queries.engine).disclosure, project_id, datetime.now(UTC))
    if report is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")
    return report


def disclosure_context(report: DisclosureReport) -> dict[str, Any]:
    """What the print page (disclosure.html) shows; the PDF shows the same (disclosure_pdf)."""
    return {
        "r": report,
        "f": report.figures,
        "plan_rows": [
            (zh, en, plan_value(report, key)) for key, zh, en in PLAN_ROWS if plan_value(report, key)
        ],
        "status_zh": STATUS_ZH,
        "in_labels": IN_LABELS,
        "out_labels": OUT_LABELS,
        "as_of_local": china_time(report.as_of),
        "local": china_time,
    }


async def disclosure_pdf_response(queries: LedgerQueries, project_id: str) -> Response:
    """The report as a PDF attachment named after the project and the day."""
    report = await disclosure_of(queries, project_id)
    pdf = await asyncio.to_thread(disclosure_pdf, report)
    day = report.as_of.astimezone(CHINA).date().isoformat()
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="disclosure-{project_id}-{day}.pdf"'},
    )
