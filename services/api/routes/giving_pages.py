"""The donor's pages: the donate form, back from paying, the receipt and where the money went.

Forms post here, never to the JSON API: a refused form is shown again with the
reason and what the donor typed, and nothing is written. The return page and
the receipt are opened with a secret the donor holds (a keyed token in the
return link; the verification code on the receipt), never with an id alone.
"""

from __future__ import annotations

import hmac
import json
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, HTTPException, Path, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from services.api.deps import DonorStoreDep, GivingDep, QueriesDep, WebSecretDep
from services.api.errors import INVALID, RETRY_AFTER_S, errors, page_errors
from services.api.giving import GiftRequest, GivingRefused
from services.api.models import DonationIn, PathId
from services.api.producer import BrokerUnavailable
from services.api.receipts import ReceiptView, receipt_view
from services.api.routes.giving_api import Code, client_hash
from services.api.web import check_csrf, keyed_hash, render
from services.donors.domain.amounts import AmountRefused
from services.donors.domain.pledges import DISPLAY_CHOICES
from services.donors.domain.receipts import RECEIPT_NO
from services.ledger.read import ProjectStatus, totals_view
from services.payments.provider import ProviderRefused, ProviderUnavailable

router = APIRouter(tags=["pages"], include_in_schema=True)
PRESETS_YUAN = (10, 50, 100, 200, 500)
CHINA = ZoneInfo("Asia/Shanghai")

ReceiptNoPath = Annotated[str, Path(pattern=RECEIPT_NO.pattern, description="e.g. SIP-2026-0001234")]
OptionalId = Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")]


def return_token(secret: bytes, donation_id: str) -> str:
    return keyed_hash(secret, "return:" + donation_id)[:32]


def _form_page(
    request: Request,
    queries: QueriesDep,
    project_id: str | None,
    venue_id: str | None,
    form: dict[str, Any],
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    open_projects = [totals_view(p) for p in queries.projects() if p.status == ProjectStatus.FUNDRAISING]
    project = next((p for p in open_projects if p["project_id"] == project_id), None)
    if project_id and project is None and error is None:
        known = queries.project(project_id)
        error = (
            f"该项目目前不接受捐赠 · project {project_id!r} does not take gifts now"
            if known
            else f"没有这个项目 · unknown project {project_id!r}"
        )
        status_code = status.HTTP_404_NOT_FOUND if known is None else status.HTTP_409_CONFLICT
    return render(
        request,
        "donate.html",
        status_code=status_code,
        project=project,
        choices=[project] if project else open_projects,
        venue_id=venue_id,
        presets=PRESETS_YUAN,
        display_choices=DISPLAY_CHOICES,
        form=form,
        error=error,
    )


@router.get(
    "/donate",
    response_class=HTMLResponse,
    responses=page_errors({404: "no such project", 409: "the project does not take gifts now", **INVALID}),
)
def donate_form(
    request: Request, queries: QueriesDep, project: OptionalId = None, venue: OptionalId = None
) -> HTMLResponse:
    """The donate form; venue QR codes carry /donate?project=…&venue=…"""
    return _form_page(request, queries, project, venue, {"preset": "50"})


@router.post(
    "/donate",
    response_class=HTMLResponse,
    responses=page_errors(
        {
            303: "the pledge is made: on to the provider's pay page",
            403: "the form's CSRF token does not match (an old form, or another site's)",
            404: "no such project",
            409: "the project does not take gifts now",
            422: "the form is shown again with what is wrong (amount, name, message, choice)",
            429: "too many donations just now; the form is shown again",
            503: "the event log or the payment provider is away; nothing was charged",
        }
    ),
)
async def donate(
    request: Request,
    queries: QueriesDep,
    giving: GivingDep,
    secret: WebSecretDep,
    project: Annotated[str, Form(max_length=64)] = "",
    venue: Annotated[str, Form(max_length=64)] = "",
    preset: Annotated[str, Form(max_length=20)] = "",
    amount: Annotated[str, Form(max_length=40)] = "",
    anonymity: Annotated[str, Form(max_length=20)] = "anonymous",
    display_name: Annotated[str, Form(max_length=200)] = "",
    message: Annotated[str, Form(max_length=1000)] = "",
    consent: Annotated[str, Form(max_length=10)] = "",
    csrf_token: Annotated[str, Form(max_length=128)] = "",
) -> Response:
    check_csrf(request, secret, csrf_token)
    typed = {
        "project": project,
        "preset": preset,
        "amount": amount,
        "anonymity": anonymity,
        "display_name": display_name,
        "message": message,
        "consent": consent == "yes",
    }

    def again(error: str, code: int) -> HTMLResponse:
        return _form_page(request, queries, project or None, venue or None, typed, error, code)

    try:
        # A typed amount wins over the preset buttons: it is what the donor wrote last.
        amount_fen = giving.amount_typed(amount if amount.strip() else preset)
        body = DonationIn(
            project_id=project,
            amount_fen=amount_fen,
            venue_id=venue or None,
            anonymity=anonymity,
            display_name=display_name.strip() or None,
            message=message.strip() or None,
            consent_to_show_name=consent == "yes",
        )
    except AmountRefused as exc:
        return again(str(exc), status.HTTP_422_UNPROCESSABLE_CONTENT)
    except ValidationError as exc:
        return again(_readable(exc), status.HTTP_422_UNPROCESSABLE_CONTENT)
    gift = GiftRequest.of(body)
    try:
        made = await giving.pledge(gift, client_hash(request, secret), None)
    except GivingRefused as exc:
        response = again(str(exc), exc.status)
        if exc.retry_after_s:
            response.headers["Retry-After"] = str(exc.retry_after_s)
        return response
    except AmountRefused as exc:
        return again(str(exc), status.HTTP_422_UNPROCESSABLE_CONTENT)
    except (BrokerUnavailable, ProviderUnavailable, ProviderRefused):
        response = again(
            "系统繁忙，未扣款，请稍后重试 · the service is busy; nothing was charged, try again shortly",
            status.HTTP_503_SERVICE_UNAVAILABLE,
        )
        response.headers["Retry-After"] = "5"
        return response
    return RedirectResponse(made.pay_url, status_code=status.HTTP_303_SEE_OTHER)


_FIELD_NAMES = {
    "display_name": "姓名 · name",
    "message": "留言 · message",
    "anonymity": "展示方式 · display choice",
    "project_id": "项目 · project",
    "venue_id": "场所 · venue",
}


def _readable(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors(include_url=False):
        where = ".".join(str(x) for x in e["loc"])
        parts.append(
            f"{_FIELD_NAMES.get(where, where or '表单 · form')}: {e['msg'].removeprefix('Value error, ')}"
        )
    return "; ".join(parts)


@router.get(
    "/donate/return/{donation_id}",
    response_class=HTMLResponse,
    responses=page_errors({404: "no such donation, or the link's token is not its own", **INVALID}),
)
def donate_return(
    request: Request,
    donation_id: PathId,
    store: DonorStoreDep,
    secret: WebSecretDep,
    t: Annotated[str, Query(max_length=64)] = "",
) -> HTMLResponse:
    """Where the pay page sends the donor back: the receipt number and code once paid."""
    pledge = store.pledge(donation_id)
    if pledge is None or not hmac.compare_digest(t.encode(), return_token(secret, donation_id).encode()):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such donation")
    waiting = pledge.receipt_no is None and pledge.status == "pending"
    return render(request, "donate_return.html", pledge=pledge, waiting=waiting)


@router.get("/receipts", response_class=HTMLResponse, responses=page_errors({}))
def receipt_lookup_form(request: Request) -> HTMLResponse:
    return render(request, "receipt_lookup.html")


@router.get(
    "/receipts/lookup",
    response_class=HTMLResponse,
    responses=page_errors(
        {303: "on to the receipt", 404: "not a receipt number and code: the form is shown again", **INVALID}
    ),
)
def receipt_lookup(
    request: Request,
    receipt_no: Annotated[str, Query(max_length=60)] = "",
    code: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """The lookup form's target: what a person typed, tidied, on to the receipt page."""
    number, typed_code = receipt_no.strip().upper(), code.strip()
    if RECEIPT_NO.fullmatch(number) is None or not 4 <= len(typed_code) <= 20:
        return render(
            request,
            "receipt_lookup.html",
            status_code=status.HTTP_404_NOT_FOUND,
            receipt_no=receipt_no,
            error="没有这个收据编号和验证码 · no receipt with this number and code",
        )
    return RedirectResponse(
        f"/receipts/{number}?{urlencode({'code': typed_code})}", status_code=status.HTTP_303_SEE_OTHER
    )


def _receipt_or_404(
    request: Request, store: DonorStoreDep, queries: QueriesDep, number: str, code: str
) -> ReceiptView:
    view = receipt_view(store, queries, request.app.state.transparency, number, code)
    if view is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "没有这个收据编号和验证码 · no receipt with this number and code"
        )
    return view


@router.get(
    "/receipts/{receipt_no}",
    response_class=HTMLResponse,
    responses=page_errors({404: "no receipt with this number and verification code", **INVALID}),
)
def receipt_page(
    request: Request, receipt_no: ReceiptNoPath, code: Code, store: DonorStoreDep, queries: QueriesDep
) -> HTMLResponse:
    view = _receipt_or_404(request, store, queries, receipt_no, code)
    paid = view.paid_at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M:%S") if view.paid_at else ""
    proof_json = ""
    if view.proof is not None:
        # Inside <script type="application/json">: '<' escaped so no text can close the element.
        proof_json = json.dumps(
            {"receipt": view.proof, "public_key": view.public_key}, ensure_ascii=False
        ).replace("<", "\\u003c")
    return render(request, "receipt.html", r=view, code=code, paid_at_local=paid, proof_json=proof_json)


@router.get(
    "/receipts/{receipt_no}/uses",
    response_class=HTMLResponse,
    responses=page_errors({404: "no receipt with this number and verification code", **INVALID}),
)
def uses_page(
    request: Request, receipt_no: ReceiptNoPath, code: Code, store: DonorStoreDep, queries: QueriesDep
) -> HTMLResponse:
    view = _receipt_or_404(request, store, queries, receipt_no, code)
    return render(request, "uses.html", r=view, code=code)


@router.get(
    "/receipts/{receipt_no}/download",
    responses=errors(
        {
            404: "no receipt with this number and verification code",
            409: "no signed tree head covers the gift yet; retry after `Retry-After`",
            **INVALID,
        },
        retry_after=(409,),
    ),
)
def receipt_download(
    request: Request, receipt_no: ReceiptNoPath, code: Code, store: DonorStoreDep, queries: QueriesDep
) -> Response:
    """The receipt as one file the standalone verifier checks (services/verifier/receipt.py)."""
    view = _receipt_or_404(request, store, queries, receipt_no, code)
    if view.proof is None or view.public_key is None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            "no signed tree head covers this gift yet; tree heads are signed every few seconds",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    bundle = {
        "receipt_no": receipt_no,
        "receipt": view.proof,
        "tree_head": view.proof["tree_head"],
        "public_key": view.public_key["public_key"],
        "key_id": view.public_key["key_id"],
        "issued_at": datetime.now(UTC).isoformat(),
    }
    return Response(
        json.dumps(bundle, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="receipt-{receipt_no}.json"'},
    )
