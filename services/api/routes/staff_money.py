"""The console's money that does not come online: the till, refunds, and money in suspense.

- The till (`/staff/till`): a venue operator records a cash-box count or a
  charity sale (the item sold) against a project, at one of their venues only;
  the venue is a path parameter, so `require_page(..., venue_id=...)` checks it.
- Refunds (`/staff/refunds`): a finance officer finds an online gift by its
  receipt number or donation id and refunds it, in full or in part, with a
  reason: through the payment provider first, then DonationRefunded.
- Money in suspense (`/staff/suspense`): one person requests a redirection to
  an open project or a refund, a different person approves or rejects it.

Every form has the CSRF token; the actor is the person of the session. What
the ledger decided is read from the journal (`?sent=<event id>`), never guessed.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.api.deps import DonorStoreDep, GivingDep, PublisherDep, QueriesDep, WebSecretDep
from services.api.errors import Problem, page_errors
from services.api.models import PathId
from services.api.producer import EventPublisher
from services.api.staff_auth import Actor, require_page
from services.api.submission import publish_or_503
from services.api.web import check_csrf, render
from services.contracts import events as ev
from services.contracts.validation import MAX_AMOUNT_FEN, MAX_SHORT_TEXT, problems_with
from services.donors.domain.amounts import AmountRefused, AmountRules
from services.ledger.read import LedgerQueries, ProjectStatus, totals_view
from services.payments.provider import ProviderRefused, ProviderUnavailable
from services.staff.domain.roles import Permission, allows

router = APIRouter(prefix="/staff", tags=["pages", "staff"], include_in_schema=False)

Till = Annotated[Actor, Depends(require_page(Permission.RECORD_TILL))]
TillAtVenue = Annotated[Actor, Depends(require_page(Permission.RECORD_TILL, venue_id="venue_id"))]
Refunder = Annotated[Actor, Depends(require_page(Permission.REFUND_DONATION))]
Viewer = Annotated[Actor, Depends(require_page(Permission.VIEW_CONSOLE))]
Resolver = Annotated[Actor, Depends(require_page(Permission.RESOLVE_SUSPENSE, project_id="project_id"))]

FORM_ERRORS = page_errors(
    {
        303: "published: back to the page, which shows the ledger's decision",
        403: "not allowed here (logged), or the form's CSRF token does not match",
        404: "no such project, gift or request",
        409: "the request was decided already, or its requester may not approve it",
        422: "the form is shown again with each field's problem",
        502: "the payment provider refused the refund (its reason is shown); nothing was published",
        503: "the payment provider or the event log is unavailable; nothing was published",
    }
)
KINDS = {"cash_box": ("募捐箱清点", "Cash-box count"), "charity_sale": ("义卖", "Charity sale")}
REFUND_ID = re.compile(r"rf-[0-9a-f]{20}\Z")
RECEIPT_NO = re.compile(r"[A-Z0-9]{2,12}-[0-9]{4}-[0-9]{7,}\Z")


async def _form(request: Request, secret: bytes) -> dict[str, str]:
    form = await request.form()
    fields = {k: v.strip() for k, v in form.items() if isinstance(v, str) and len(v) <= 4000}
    check_csrf(request, secret, fields.get("csrf", ""))
    return fields


@dataclass(frozen=True)
class _MoneyForm:
    """What every money form's handler needs besides the actor and the path: the request, whose
    form `fields` reads (checking its CSRF token), the event log and the ledger's read side."""

    request: Request
    secret: bytes
    publisher: EventPublisher
    queries: LedgerQueries

    async def fields(self) -> dict[str, str]:
        return await _form(self.request, self.secret)


def _money_form(
    request: Request, secret: WebSecretDep, publisher: PublisherDep, queries: QueriesDep
) -> _MoneyForm:
    return _MoneyForm(request, secret, publisher, queries)


MoneyForm = Annotated[_MoneyForm, Depends(_money_form)]


def _yuan(text: str, field: str, problems: list[Problem]) -> int:
    try:
        return AmountRules(MAX_AMOUNT_FEN).parse_yuan(text)
    except AmountRefused as refused:
        problems.append(Problem(field=field, problem=str(refused)))
        return 0


def _text(fields: Mapping[str, str], name: str, problems: list[Problem], *, required: bool = True) -> str:
    value = fields.get(name, "")
    if required and not value:
        problems.append(Problem(field=name, problem="必填 · required"))
    elif len(value) > MAX_SHORT_TEXT:
        problems.append(
            Problem(field=name, problem=f"最多 {MAX_SHORT_TEXT} 字 · at most {MAX_SHORT_TEXT} characters")
        )
    return value


def _page(
    request: Request,
    name: str,
    actor: Actor,
    queries: LedgerQueries,
    status_code: int = 200,
    *,
    values: Mapping[str, str] | None = None,
    problems: list[Problem] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A money page: the form's values and problems, and the journal's entry for the event the
    page sent (`?sent=`), once the ledger has decided it."""
    sent = request.query_params.get("sent")
    return render(
        request,
        name,
        status_code,
        person=actor.person,
        sent=sent,
        decided=queries.entry(sent) if sent else None,
        values=values or {},
        problems=problems or [],
        **context,
    )


async def _publish(event: ev.Event, problems: list[Problem], publisher: PublisherDep) -> None:
    """Publish, or add what the event's own rules refuse (nothing is published then)."""
    problems.extend(Problem(field="form", problem=p) for p in problems_with(event))
    if not problems:
        await publish_or_503(publisher, event)


def _event_fields(actor: Actor, project_id: str, event_id: str | None = None) -> dict[str, Any]:
    return {
        "event_id": event_id or str(uuid.uuid4()),
        "occurred_at": ev.utc_now_ms(),
        "actor": actor.name,
        "project_id": project_id,
    }


# --- the till -----------------------------------------------------------------------


def _till_page(
    request: Request, actor: Actor, queries: LedgerQueries, status_code: int = 200, **form: Any
) -> HTMLResponse:
    person = actor.person
    assert person is not None  # pages take no machine client
    venue = form.pop("venue", None) or request.query_params.get("venue", "")
    venues = sorted(person.venues) if person.venues else ([venue] if venue else [])
    return _page(
        request,
        "staff_till.html",
        actor,
        queries,
        status_code,
        venues=[v for v in venues if allows(person, Permission.RECORD_TILL, venue_id=v)],
        projects=[totals_view(p) for p in queries.projects() if p.status == ProjectStatus.FUNDRAISING],
        kinds=KINDS,
        **form,
    )


@router.get("/till", response_class=HTMLResponse, responses=page_errors({403: "may not use the till"}))
def till(request: Request, actor: Till, queries: QueriesDep) -> HTMLResponse:
    return _till_page(request, actor, queries)


@router.post("/till/{venue_id}", responses=FORM_ERRORS)
async def record_till(venue_id: PathId, actor: TillAtVenue, form: MoneyForm) -> Response:
    request, publisher, queries = form.request, form.publisher, form.queries
    fields = await form.fields()
    problems: list[Problem] = []
    kind = fields.get("kind", "")
    if kind not in KINDS:
        problems.append(
            Problem(field="kind", problem="募捐箱清点或义卖 · a cash-box count or a charity sale")
        )
    item = _text(fields, "item", problems, required=kind == "charity_sale") or None
    amount = _yuan(fields.get("amount_yuan", ""), "amount_yuan", problems)
    project_id = fields.get("project_id", "")
    project = await asyncio.to_thread(queries.project, project_id) if project_id else None
    if project is None:
        problems.append(Problem(field="project_id", problem="未知项目 · unknown project"))
    event = ev.OfflineDonationRecorded(
        **_event_fields(actor, project_id or "unknown"),
        record_id=f"till-{uuid.uuid4().hex[:20]}",
        kind=kind,
        item=item if kind == "charity_sale" else None,
        venue_id=venue_id,
        amount_fen=amount,
        currency=project.currency if project else "CNY",
    )
    if not problems:
        await _publish(event, problems, publisher)
    if problems:
        return _till_page(
            request,
            actor,
            queries,
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            venue=venue_id,
            values=fields,
            problems=problems,
        )
    return RedirectResponse(f"/staff/till?venue={venue_id}&sent={event.event_id}", status.HTTP_303_SEE_OTHER)


# --- refunds -------------------------------------------------------------------------


def _status_of(refused: Problem) -> int:
    """The provider's refusal is a bad gateway; a gift that was not paid online is a bad form."""
    return (
        status.HTTP_502_BAD_GATEWAY if refused.field == "provider" else status.HTTP_422_UNPROCESSABLE_CONTENT
    )


async def _refund_at_provider(
    giving: GivingDep, store: DonorStoreDep, donation_id: str, refund_no: str, amount_fen: int, reason: str
) -> Problem | None:
    """Return money of an online gift through the payment provider, before anything is published.

    `refund_no` is the provider's out_refund_no: the same one again is the same refund.
    The provider's refusal comes back as the form's problem; its absence is a 503."""
    pledge = await asyncio.to_thread(store.pledge, donation_id)
    if pledge is None:
        return Problem(field="donation_id", problem=f"不是线上捐赠 · {donation_id} is not an online gift")
    try:
        await giving.provider.refund(
            pledge.out_trade_no, refund_no, amount_fen, pledge.amount_fen, pledge.currency, reason[:80]
        )
    except ProviderRefused as refused:
        return Problem(
            field="provider", problem=f"支付机构拒绝退款 · the provider refused: {refused.message}"
        )
    except ProviderUnavailable as away:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"the payment provider is unavailable; nothing was refunded ({away})",
        ) from away
    return None


def _find_gift(query: str, queries: LedgerQueries, store: DonorStoreDep) -> dict[str, Any] | None:
    """A confirmed online gift by its receipt number or donation id."""
    donation_id = query
    if RECEIPT_NO.match(query):
        pledge = store.pledge_by_receipt(query)
        if pledge is None:
            return None
        donation_id = pledge.donation_id
    return queries.gift(donation_id) if donation_id else None


def _refunds_of(queries: LedgerQueries, gift: dict[str, Any]) -> list[dict[str, Any]]:
    """The refunds the journal holds for one gift, with the ledger's decisions."""
    rows = []
    for stored in queries.project_entries(gift["project_id"], ("DonationRefunded",)):
        record = stored.record
        body = record.get("body") or {}
        if body.get("donation_id") == gift["donation_id"]:
            rows.append(
                {
                    "seq": stored.seq,
                    **body,
                    "decision": record.get("decision"),
                    "reason_ledger": record.get("reason"),
                }
            )
    return rows


def _refund_page(
    request: Request,
    actor: Actor,
    queries: LedgerQueries,
    store: DonorStoreDep,
    query: str,
    status_code: int = 200,
    problems: list[Problem] | None = None,
) -> HTMLResponse:
    gift = _find_gift(query, queries, store) if query else None
    if query and gift is None and status_code == 200:
        status_code = status.HTTP_404_NOT_FOUND
        problems = [
            Problem(field="q", problem="没有这笔捐赠 · no gift with this receipt number or donation id")
        ]
    return _page(
        request,
        "staff_refunds.html",
        actor,
        queries,
        status_code,
        problems=problems,
        q=query,
        gift=gift,
        refunds=_refunds_of(queries, gift) if gift else [],
        refund_id=f"rf-{uuid.uuid4().hex[:20]}",
    )


@router.get(
    "/refunds",
    response_class=HTMLResponse,
    responses=page_errors({403: "may not refund", 404: "no gift with this receipt number or donation id"}),
)
def refunds(request: Request, actor: Refunder, queries: QueriesDep, store: DonorStoreDep) -> HTMLResponse:
    return _refund_page(request, actor, queries, store, request.query_params.get("q", "").strip()[:64])


@router.post("/refunds/{donation_id}", responses=FORM_ERRORS)
async def refund(
    donation_id: PathId, actor: Refunder, form: MoneyForm, store: DonorStoreDep, giving: GivingDep
) -> Response:
    request, publisher, queries = form.request, form.publisher, form.queries
    fields = await form.fields()
    gift = await asyncio.to_thread(queries.gift, donation_id)
    if gift is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no online gift {donation_id!r}")
    problems: list[Problem] = []
    amount = _yuan(fields.get("amount_yuan", ""), "amount_yuan", problems)
    refundable = gift["gross_fen"] - gift["refunded_fen"]
    if amount > refundable:
        problems.append(
            Problem(
                field="amount_yuan", problem=f"超过可退金额 · more than the {refundable} fen still refundable"
            )
        )
    if gift["decision"] == "suspense":
        problems.append(
            Problem(
                field="form",
                problem="此捐赠在暂挂账户中，请在“暂挂资金”处理 · held in suspense: resolve it there",
            )
        )
    reason = _text(fields, "reason", problems)
    refund_id = fields.get("refund_id", "")
    if not REFUND_ID.match(refund_id):
        problems.append(
            Problem(field="refund_id", problem="表单已损坏，请刷新 · the form is damaged; reload it")
        )
    # The event's id follows from the refund id: the same form sent twice is one refund.
    event = ev.DonationRefunded(
        **_event_fields(actor, gift["project_id"], ev.derived_id("refund", refund_id)),
        donation_id=donation_id,
        refund_id=refund_id or "invalid",
        amount_fen=amount,
        currency=gift["currency"],
        reason=reason,
    )
    problems.extend(Problem(field="form", problem=p) for p in problems_with(event) if not problems)
    if problems:
        return _refund_page(
            request, actor, queries, store, donation_id, status.HTTP_422_UNPROCESSABLE_CONTENT, problems
        )
    done = f"/staff/refunds?q={donation_id}&sent={event.event_id}"
    if await asyncio.to_thread(queries.entry, event.event_id) is not None:
        return RedirectResponse(done, status.HTTP_303_SEE_OTHER)  # this very form was sent before
    refused = await _refund_at_provider(giving, store, donation_id, refund_id, amount, reason)
    if refused is not None:
        return _refund_page(request, actor, queries, store, donation_id, _status_of(refused), [refused])
    await publish_or_503(publisher, event)
    return RedirectResponse(done, status.HTTP_303_SEE_OTHER)


# --- money in suspense --------------------------------------------------------------


def _suspense_page(
    request: Request, actor: Actor, queries: LedgerQueries, status_code: int = 200, **form: Any
) -> HTMLResponse:
    person = actor.person
    assert person is not None
    projects = [totals_view(p) for p in queries.projects()]
    resolutions = queries.suspense_resolutions()
    return _page(
        request,
        "staff_suspense.html",
        actor,
        queries,
        status_code,
        held=[p for p in projects if p["suspense_fen"]],
        open_projects=[p for p in projects if p["status"] == ProjectStatus.FUNDRAISING],
        pending=[r for r in resolutions if r["status"] == "requested"],
        done=[r for r in resolutions if r["status"] != "requested"],
        may_resolve=allows(person, Permission.RESOLVE_SUSPENSE),
        **form,
    )


@router.get(
    "/suspense", response_class=HTMLResponse, responses=page_errors({403: "no access to the console"})
)
def suspense(request: Request, actor: Viewer, queries: QueriesDep) -> HTMLResponse:
    return _suspense_page(request, actor, queries)


@router.post("/suspense/{project_id}/requests", responses=FORM_ERRORS)
async def request_resolution(project_id: PathId, actor: Resolver, form: MoneyForm) -> Response:
    request, publisher, queries = form.request, form.publisher, form.queries
    fields = await form.fields()
    project = await asyncio.to_thread(queries.project, project_id)
    if project is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown project {project_id!r}")
    problems: list[Problem] = []
    action = fields.get("action", "")
    if action not in ("redirect", "refund"):
        problems.append(Problem(field="action", problem="转入其他项目或退款 · redirect or refund"))
    amount = _yuan(fields.get("amount_yuan", ""), "amount_yuan", problems)
    if amount > project.suspense_fen:
        problems.append(
            Problem(
                field="amount_yuan",
                problem=f"超过暂挂金额 · more than the {project.suspense_fen} fen in suspense",
            )
        )
    target = fields.get("target_project_id", "") if action == "redirect" else ""
    if action == "redirect":
        open_ids = {p.project_id for p in queries.projects() if p.status == ProjectStatus.FUNDRAISING}
        if target not in open_ids or target == project_id:
            problems.append(
                Problem(
                    field="target_project_id", problem="请选择一个正在募捐的项目 · choose an open project"
                )
            )
    reason = _text(fields, "reason", problems)
    event = ev.SuspenseResolutionRequested(
        **_event_fields(actor, project_id),
        resolution_id=f"sr-{uuid.uuid4().hex[:20]}",
        action=action,
        amount_fen=amount,
        currency=project.currency,
        target_project_id=target or None,
        donation_id=fields.get("donation_id") or None,
        reason=reason,
    )
    if not problems:
        await _publish(event, problems, publisher)
    if problems:
        return _suspense_page(
            request, actor, queries, status.HTTP_422_UNPROCESSABLE_CONTENT, values=fields, problems=problems
        )
    return RedirectResponse(f"/staff/suspense?sent={event.event_id}", status.HTTP_303_SEE_OTHER)


async def _pending(queries: LedgerQueries, project_id: str, resolution_id: str) -> dict[str, Any]:
    """The request, if it still awaits a decision (404 or 409 otherwise)."""
    found = [
        r
        for r in await asyncio.to_thread(queries.suspense_resolutions, project_id)
        if r["resolution_id"] == resolution_id
    ]
    if not found:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no suspense request {resolution_id!r} for {project_id!r}"
        )
    if found[0]["status"] != "requested":
        raise HTTPException(status.HTTP_409_CONFLICT, f"the request is already {found[0]['status']}")
    return found[0]


@router.post("/suspense/{project_id}/requests/{resolution_id}/approve", responses=FORM_ERRORS)
async def approve_resolution(
    project_id: PathId,
    resolution_id: PathId,
    actor: Resolver,
    form: MoneyForm,
    store: DonorStoreDep,
    giving: GivingDep,
) -> Response:
    request, publisher, queries = form.request, form.publisher, form.queries
    await form.fields()
    resolution = await _pending(queries, project_id, resolution_id)
    if resolution["requested_by"] == actor.name:
        # The ledger refuses it too (on the journal's actors); the page says so at once.
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "申请人不能批准自己的申请 · the requester may not approve their own request",
        )
    if resolution["action"] == "refund" and resolution["donation_id"]:
        # An online gift's money goes back through the provider, the request's id its refund number.
        refused = await _refund_at_provider(
            giving, store, resolution["donation_id"], resolution_id, resolution["amount_fen"], "暂挂资金退款"
        )
        if refused is not None:
            return _suspense_page(request, actor, queries, _status_of(refused), problems=[refused])
    event = ev.SuspenseResolutionApproved(**_event_fields(actor, project_id), resolution_id=resolution_id)
    await publish_or_503(publisher, event)
    return RedirectResponse(f"/staff/suspense?sent={event.event_id}", status.HTTP_303_SEE_OTHER)


@router.post("/suspense/{project_id}/requests/{resolution_id}/reject", responses=FORM_ERRORS)
async def reject_resolution(
    project_id: PathId, resolution_id: PathId, actor: Resolver, form: MoneyForm
) -> Response:
    request, publisher, queries = form.request, form.publisher, form.queries
    fields = await form.fields()
    await _pending(queries, project_id, resolution_id)
    problems: list[Problem] = []
    reason = _text(fields, "reason", problems)
    if problems:
        return _suspense_page(
            request, actor, queries, status.HTTP_422_UNPROCESSABLE_CONTENT, problems=problems
        )
    event = ev.SuspenseResolutionRejected(
        **_event_fields(actor, project_id), resolution_id=resolution_id, reason=reason
    )
    await publish_or_503(publisher, event)
    return RedirectResponse(f"/staff/suspense?sent={event.event_id}", status.HTTP_303_SEE_OTHER)
