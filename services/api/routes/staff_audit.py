"""The closed-loop view of a project: one page an auditor can sign off.

Everything on it is read from the journal up to one sequence number (services/ledger/read
ProjectAudit): the journal's head, or with `?as_of=` the last entry the ledger had recorded by
that instant, so a past date shows the figures exactly as the ledger had them then. Administrators
and auditors see every project, a project manager only their own (Permission.AUDIT).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse

from services.api.deps import ProjectAuditDep, VerificationDep
from services.api.errors import Problem, page_errors
from services.api.models import PathId
from services.api.routes.staff_pages import ROLE_ZH
from services.api.staff_auth import Actor, require_page
from services.api.web import render
from services.staff.domain.roles import Permission

router = APIRouter(prefix="/staff/audit", tags=["pages", "staff"], include_in_schema=False)

Auditor = Annotated[Actor, Depends(require_page(Permission.AUDIT, project_id="project_id"))]
CHINA = ZoneInfo("Asia/Shanghai")  # a date on the form is a day of the federation's calendar
PER_PAGE = 200  # timeline entries a page: a 100,000-gift project is read a page at a time

# Each journal entry kind, Chinese then English.
KIND_LABELS = {
    "ProjectRegistered": ("项目登记", "Project registered"),
    "ProjectApproved": ("项目批准", "Project approved"),
    "FundraisingOpened": ("开始募捐", "Fundraising opened"),
    "FundraisingClosed": ("结束募捐", "Fundraising closed"),
    "ProgressReported": ("进展报告", "Progress reported"),
    "CorrectionPublished": ("发布更正", "Correction published"),
    "ProjectSuspended": ("项目暂停", "Project suspended"),
    "ProjectResumed": ("项目恢复", "Project resumed"),
    "ProjectClosed": ("项目结项", "Project closed"),
    "DonationPledged": ("捐赠意向", "Gift pledged"),
    "DonationConfirmed": ("捐赠到账", "Gift confirmed"),
    "DonationFailed": ("支付未成功", "Payment failed"),
    "DonationRefunded": ("捐赠退款", "Gift refunded"),
    "OfflineDonationRecorded": ("线下收入登记", "Offline takings recorded"),
    "SuspenseResolutionRequested": ("暂挂资金处理申请", "Suspense resolution requested"),
    "SuspenseResolutionApproved": ("暂挂资金处理批准", "Suspense resolution approved"),
    "SuspenseResolutionRejected": ("暂挂资金处理驳回", "Suspense resolution rejected"),
    "DisbursementRequested": ("申请拨付", "Disbursement requested"),
    "DisbursementApproved": ("批准拨付", "Disbursement approved"),
    "DisbursementRejected": ("驳回拨付", "Disbursement rejected"),
    "DisbursementPaid": ("已付款", "Disbursement paid"),
    "EvidenceAttached": ("添加凭证", "Evidence attached"),
}
DECISION_LABELS = {
    "posted": ("已入账", "applied, money moved"),
    "recorded": ("已记录", "applied"),
    "suspense": ("记入暂挂", "booked to suspense"),
    "rejected": ("已拒绝", "rejected"),
}
PAGE_ERRORS = page_errors(
    {
        403: "not an auditor or administrator, nor this project's manager (logged)",
        404: "no such project at that time",
        422: "as_of is neither a date nor an instant with its time zone: the form again, naming it",
    }
)


def parse_as_of(text: str) -> datetime | None:
    """'' is now; a date (YYYY-MM-DD) is the end of that day in China; an instant needs its zone."""
    text = text.strip()
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day + timedelta(days=1), time(), CHINA) - timedelta(milliseconds=1)
    try:
        instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            "应为日期 2026-06-30 或带时区的时间 2026-06-30T18:00:00+08:00 · "
            "a date (2026-06-30) or an instant with its time zone (2026-06-30T18:00:00+08:00)"
        ) from None
    if instant.tzinfo is None:
        raise ValueError("时间须带时区 · the instant needs its time zone, e.g. +08:00 or Z")
    return instant


@router.get("/projects/{project_id}", response_class=HTMLResponse, responses=PAGE_ERRORS)
def project_audit(
    request: Request,
    project_id: PathId,
    actor: Auditor,
    audit: ProjectAuditDep,
    verification: VerificationDep,
    as_of: Annotated[str, Query(max_length=64, description="YYYY-MM-DD or an ISO instant")] = "",
    page: Annotated[int, Query(ge=0, le=10_000)] = 0,
) -> HTMLResponse:
    person = actor.person
    assert person is not None  # pages take no machine client
    common: dict[str, Any] = {
        "person": person,
        "role_zh": ROLE_ZH[person.role],
        "project_id": project_id,
        "as_of_text": as_of,
    }
    try:
        instant = parse_as_of(as_of)
    except ValueError as refused:
        problems = [Problem(field="as_of", problem=str(refused))]
        return render(
            request,
            "staff_audit_project.html",
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            **common,
            problems=problems,
            view=None,
        )
    now = datetime.now(UTC)
    view = audit.view(project_id, instant, now, page, PER_PAGE)
    if view is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no project {project_id!r} at that time")
    return render(
        request,
        "staff_audit_project.html",
        **common,
        problems=[],
        view=view,
        verified=verification.status(),
        kinds=KIND_LABELS,
        decisions=DECISION_LABELS,
        page=page,
        pages=max(1, -(-view.timeline_total // PER_PAGE)),
        now=now,
    )
