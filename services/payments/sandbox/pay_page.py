"""The hosted pay page, `/pay/{prepay_id}`: what a payer sees in place of WeChat's H5 cashier.

Server-rendered, Chinese first and English second, mobile first, with its
CSS inline and nothing loaded from elsewhere; a Content-Security-Policy
allows only that inline style (by nonce) and forms posting here or, through
the redirect after paying, to the merchant's H5 origin. The form carries a
CSRF token that must match a SameSite=Strict cookie (double submit), so
another site cannot pay or fail an order through a visitor's browser.

Actions: pay (→ SUCCESS, a notification, a 303 to the merchant's
`redirect_url`), fail (→ PAYERROR) and cancel (stays NOTPAY, for the merchant
to close); the last two show the result with a link back.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from services.payments.provider import ProviderRefused, TradeState
from services.payments.sandbox.deps import SimulatorDep
from services.payments.sandbox.orders import Order
from services.payments.sandbox.simulator import WechatPaySimulator

CSRF_COOKIE = "sandbox_csrf"
CSRF_FIELD = "csrf_token"
CSRF_TOKEN_BYTES = 32
CSRF_TOKEN_CHARS = 43  # token_urlsafe(32)'s length
MAX_FORM_BYTES = 4096

templates = Jinja2Templates(directory=Path(__file__).resolve().parent / "templates")


@dataclass(frozen=True)
class Outcome:
    zh: str
    en: str


PAID = Outcome("支付成功", "Payment successful")
FAILED = Outcome("支付失败", "Payment failed")
CANCELLED = Outcome("已取消支付", "Payment cancelled")
FORM_EXPIRED = Outcome("页面已失效，请重新打开支付页面", "This page has expired; open the payment page again")
BAD_REDIRECT = Outcome("返回地址不属于商户的 H5 域名", "redirect_url is not on the merchant's H5 domain")
BAD_FORM = Outcome("请求无效", "Invalid request")
NOT_FOUND = Outcome("订单不存在", "Order not found")
REFUSALS = {
    "ORDERCLOSED": Outcome("订单已关闭", "The order is closed"),
    "ORDER_EXPIRED": Outcome("订单已过期", "The order has expired"),
}
STATES = {
    TradeState.SUCCESS: Outcome("订单已支付", "The order is already paid"),
    TradeState.REFUND: Outcome("订单已支付", "The order is already paid"),
    TradeState.PAYERROR: FAILED,
    TradeState.CLOSED: REFUSALS["ORDERCLOSED"],
}


def format_yuan(fen: int, currency: str) -> str:
    whole, cents = divmod(fen, 100)
    symbol = "¥" if currency == "CNY" else f"{currency} "
    return f"{symbol}{whole:,}.{cents:02d}"


router = APIRouter(include_in_schema=False)


def render(
    request: Request, sim: WechatPaySimulator, template: str, context: Mapping[str, object], status: int = 200
) -> HTMLResponse:
    style_nonce = secrets.token_urlsafe(16)
    response = templates.TemplateResponse(
        request, template, {**context, "style_nonce": style_nonce}, status_code=status
    )
    # form-action covers where the form's answer redirects to as well: the merchant's return page.
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'nonce-{style_nonce}'; form-action 'self' {sim.merchant.h5_origin}; "
        "base-uri 'none'; frame-ancestors 'none'"
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def result(
    request: Request,
    sim: WechatPaySimulator,
    outcome: Outcome,
    status: int,
    back_url: str | None,
    retry_url: str | None = None,
) -> HTMLResponse:
    context = {"outcome": outcome, "back_url": back_url, "retry_url": retry_url}
    return render(request, sim, "result.html", context, status)


def page_url(order: Order, redirect_url: str | None) -> str:
    query = f"?{urlencode({'redirect_url': redirect_url})}" if redirect_url else ""
    return f"/pay/{order.prepay_id}{query}"


@router.get("/pay/{prepay_id}")
async def show(
    prepay_id: str, request: Request, sim: SimulatorDep, redirect_url: str | None = None
) -> Response:
    if redirect_url and not sim.redirect_allowed(redirect_url):
        return result(request, sim, BAD_REDIRECT, 400, None)
    order = sim.orders.find_prepay_id(prepay_id)
    if order is None:
        return result(request, sim, NOT_FOUND, 404, redirect_url)
    if order.trade_state in STATES:
        return result(request, sim, STATES[order.trade_state], 409, redirect_url)
    if sim.clock() > order.terms.time_expire:
        return result(request, sim, REFUSALS["ORDER_EXPIRED"], 409, redirect_url)
    token = request.cookies.get(CSRF_COOKIE) or ""
    if len(token) != CSRF_TOKEN_CHARS:  # not one of ours
        token = secrets.token_urlsafe(CSRF_TOKEN_BYTES)
    context = {
        "merchant": sim.merchant.mchid,
        "description": order.terms.description,
        "amount": format_yuan(order.terms.total_fen, order.terms.currency),
        "action_url": page_url(order, redirect_url),
        "csrf_field": CSRF_FIELD,
        "csrf_token": token,
    }
    response = render(request, sim, "pay.html", context)
    response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", path="/pay")
    return response


@router.post("/pay/{prepay_id}")
async def act(
    prepay_id: str, request: Request, sim: SimulatorDep, redirect_url: str | None = None
) -> Response:
    if int(request.headers.get("Content-Length") or 0) > MAX_FORM_BYTES:
        return result(request, sim, BAD_FORM, 413, None)
    try:
        form = parse_qs((await request.body()).decode("utf-8", errors="replace"), max_num_fields=10)
    except ValueError:
        return result(request, sim, BAD_FORM, 400, None)
    sent_token = form.get(CSRF_FIELD, [""])[0]
    cookie_token = request.cookies.get(CSRF_COOKIE, "")
    if not sent_token or not secrets.compare_digest(sent_token.encode(), cookie_token.encode()):
        return result(request, sim, FORM_EXPIRED, 403, None)
    if redirect_url and not sim.redirect_allowed(redirect_url):
        return result(request, sim, BAD_REDIRECT, 400, None)
    order = sim.orders.find_prepay_id(prepay_id)
    if order is None:
        return result(request, sim, NOT_FOUND, 404, redirect_url)
    action = form.get("action", [""])[0]
    try:
        if action == "pay":
            sim.pay(order)
            if redirect_url:
                return RedirectResponse(redirect_url, status_code=303)
            return result(request, sim, PAID, 200, None)
        if action == "fail":
            sim.orders.fail(order, sim.clock())
            return result(request, sim, FAILED, 200, redirect_url)
        if action == "cancel":
            retry_url = page_url(order, redirect_url)
            return result(request, sim, CANCELLED, 200, redirect_url, retry_url)
    except ProviderRefused as refusal:
        outcome = REFUSALS.get(refusal.code) or STATES.get(order.trade_state, BAD_FORM)
        return result(request, sim, outcome, 409, redirect_url)
    return result(request, sim, BAD_FORM, 400, redirect_url)


@router.get("/favicon.ico")
async def no_icon() -> Response:
    # Browsers ask for it on every page; an empty answer keeps their consoles free of 404s.
    return Response(status_code=204)
