"""The provider client against the sandbox, both real servers on loopback, no mocks.

A small merchant app (`Merchant`) stands in for the API: it receives the
notifications, has `parse_notification` verify and decrypt them, answers as a
test tells it to, and is the page the payer is sent back to.
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from services.payments.provider import (
    InMemoryNonceStore,
    NotificationRefused,
    PaymentRequest,
    PaymentResult,
    PaymentSession,
    ProviderRefused,
    ProviderUnavailable,
    RefundStatus,
    TradeState,
    UnverifiedResponse,
)
from services.payments.sandbox.main import build
from services.payments.sandbox.notifier import RetrySchedule
from services.payments.wechatpay_client import WechatPayV3Provider
from services.payments.wechatpay_keys import (
    PlatformKeyDirectory,
    ensure_local_keys,
    new_rsa_key,
    private_pem,
    write_new_file,
)
from services.payments.wechatpay_v3 import verify_body
from services.platform.free_ports import free_ports
from services.platform.settings import Settings
from tests.fixtures.ledger import eventually
from tests.payments.servers import serving

FAST_RETRIES = RetrySchedule(
    first_delay_s=0.05, factor=2, max_delay_s=0.4, max_attempts=60, attempt_timeout_s=2
)
T = TypeVar("T")


@dataclass(frozen=True)
class Received:
    status: int  # what the merchant answered
    notification_id: str | None
    result: PaymentResult | None
    refused: str | None


class Merchant:
    """Receives notifications at /notify and the returning payer at /done."""

    def __init__(self, provider: WechatPayV3Provider) -> None:
        self.provider = provider
        self.received: list[Received] = []
        self._first_answers: dict[str, list[int]] = {}
        self._changed = threading.Condition()
        self.app = FastAPI()
        self.app.add_api_route("/notify", self._notify, methods=["POST"])
        self.app.add_api_route("/done", self._done, methods=["GET"])

    def answer_first(self, out_trade_no: str, *statuses: int) -> None:
        """Answer this order's first notifications with these statuses, the rest with 204."""
        self._first_answers[out_trade_no] = list(statuses)

    def wait_for(self, out_trade_no: str, count: int, timeout: float = 10.0) -> list[Received]:
        with self._changed:
            found = self._changed.wait_for(lambda: len(self.of(out_trade_no)) >= count, timeout)
        assert found, f"{count} notifications of {out_trade_no} did not arrive: {self.received}"
        return self.of(out_trade_no)

    def of(self, out_trade_no: str) -> list[Received]:
        return [r for r in self.received if r.result is not None and r.result.out_trade_no == out_trade_no]

    async def _notify(self, request: Request) -> Response:
        body = await request.body()
        try:
            result = self.provider.parse_notification(request.headers, body, datetime.now(UTC))
        except NotificationRefused as refused:
            self._record(Received(400, None, None, refused.reason))
            return Response(json.dumps({"code": "FAIL", "message": refused.reason}), 400)
        scripted = self._first_answers.get(result.out_trade_no, [])
        status = scripted.pop(0) if scripted else 204
        self._record(Received(status, json.loads(body)["id"], result, None))
        return Response(status_code=status)

    async def _done(self) -> Response:
        return Response("thank you", media_type="text/plain")

    def _record(self, received: Received) -> None:
        with self._changed:
            self.received.append(received)
            self._changed.notify_all()


@dataclass(frozen=True)
class Live:
    settings: Settings
    merchant: Merchant
    merchant_url: str
    sandbox_url: str

    def run(self, scenario: Callable[[WechatPayV3Provider], Awaitable[T]], **changes: str) -> T:
        """The scenario with a provider client of its own (settings changed by `changes`), on an
        event loop of its own."""

        async def with_provider() -> T:
            settings = self.settings.model_copy(update=changes)
            async with WechatPayV3Provider.from_settings(settings, InMemoryNonceStore()) as provider:
                return await scenario(provider)

        return asyncio.run(with_provider())

    def request(
        self, out_trade_no: str, amount_fen: int = 5005, notify_path: str = "/notify"
    ) -> PaymentRequest:
        return PaymentRequest(
            out_trade_no=out_trade_no,
            amount_fen=amount_fen,
            currency="CNY",
            description="苏州助学 · school meals",
            notify_url=f"{self.merchant_url}{notify_path}",
            return_url=f"{self.merchant_url}/done?order={out_trade_no}",
            expires_at=datetime.now(UTC) + timedelta(minutes=15),
            payer_client_ip="127.0.0.1",
        )

    def create(self, req: PaymentRequest) -> PaymentSession:
        return self.run(lambda provider: provider.create_payment(req))

    def query(self, out_trade_no: str) -> PaymentResult:
        return self.run(lambda provider: provider.query(out_trade_no))

    def sandbox(self, method: str, path: str) -> Any:
        response = httpx.request(method, f"{self.sandbox_url}{path}")
        response.raise_for_status()
        return response.json()

    def deliveries(self, out_trade_no: str) -> list[dict[str, Any]]:
        answer: list[dict[str, Any]] = self.sandbox("GET", f"/sandbox/deliveries?out_trade_no={out_trade_no}")
        return answer


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    keys = tmp_path_factory.mktemp("payments") / "keys"
    sandbox_port, merchant_port = free_ports(2)
    settings = Settings(
        payment_base_url=f"http://127.0.0.1:{sandbox_port}",
        sandbox_port=sandbox_port,
        public_base_url=f"http://127.0.0.1:{merchant_port}",
        wechatpay_api_v3_key_path=str(keys / "wechatpay-apiv3.key"),
        wechatpay_merchant_key_path=str(keys / "wechatpay-merchant.pem"),
        wechatpay_platform_keys_dir=str(keys / "wechatpay-platform"),
    )
    ensure_local_keys(settings)
    merchant = Merchant(WechatPayV3Provider.from_settings(settings, InMemoryNonceStore()))
    with (
        serving(merchant.app, merchant_port) as merchant_url,
        serving(build(settings, retry=FAST_RETRIES), sandbox_port) as sandbox_url,
    ):
        yield Live(settings, merchant, merchant_url, sandbox_url)
    asyncio.run(merchant.provider.aclose())


def new_trade_no() -> str:
    return f"T{uuid.uuid4().hex[:20]}"


def csrf_token(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the pay form has no CSRF token"
    return match[1]


def test_paying_on_the_pay_page_sends_the_payer_back_and_notifies_the_merchant(live: Live) -> None:
    out_trade_no = new_trade_no()
    req = live.request(out_trade_no, amount_fen=5005)
    session = live.create(req)
    assert session.pay_url.startswith(f"{live.sandbox_url}/pay/{session.prepay_id}?redirect_url=")

    with httpx.Client(follow_redirects=False) as browser:
        page = browser.get(session.pay_url)
        assert page.status_code == 200
        csp = page.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and f"form-action 'self' {live.merchant_url}" in csp
        html = page.text
        assert (
            "¥50.05" in html and "苏州助学 · school meals" in html and live.settings.wechatpay_mch_id in html
        )
        assert html.index("支付") < html.index("Pay") and "支付失败" in html and "取消" in html
        assert not re.search(r"<script|<link|<img|\ssrc=|@import|url\(", html), "the page loads nothing"
        style_nonce = re.search(r"style-src 'nonce-([^']+)'", csp)
        assert style_nonce and f'<style nonce="{style_nonce[1]}">' in html
        token = csrf_token(html)

        action = session.pay_url.removeprefix(live.sandbox_url)
        without_token = browser.post(f"{live.sandbox_url}{action}", data={"action": "pay"})
        assert without_token.status_code == 403
        wrong_token = browser.post(
            f"{live.sandbox_url}{action}", data={"action": "pay", "csrf_token": "x" * 43}
        )
        assert wrong_token.status_code == 403
        assert live.query(out_trade_no).trade_state is TradeState.NOTPAY

        paid = browser.post(f"{live.sandbox_url}{action}", data={"action": "pay", "csrf_token": token})
        assert paid.status_code == 303
        assert paid.headers["Location"] == req.return_url

    (received,) = live.merchant.wait_for(out_trade_no, 1)
    assert received.status == 204 and received.result is not None
    assert received.result.trade_state is TradeState.SUCCESS
    assert (received.result.amount_fen, received.result.currency) == (5005, "CNY")
    queried = live.query(out_trade_no)
    assert queried.trade_state is TradeState.SUCCESS
    assert queried.transaction_id == received.result.transaction_id is not None
    assert queried.success_time == received.result.success_time is not None


def test_the_pay_page_sends_payers_back_only_to_the_merchants_domain(live: Live) -> None:
    session = live.create(live.request(new_trade_no()))
    page = httpx.get(f"{live.sandbox_url}/pay/{session.prepay_id}?redirect_url=https://evil.example/")
    assert page.status_code == 400
    assert "返回地址不属于商户的 H5 域名" in page.text


def test_a_failed_payment_reads_payerror_and_a_cancelled_one_stays_unpaid(live: Live) -> None:
    failed, cancelled = new_trade_no(), new_trade_no()
    for out_trade_no, action in ((failed, "fail"), (cancelled, "cancel")):
        session = live.create(live.request(out_trade_no))
        with httpx.Client() as browser:
            token = csrf_token(browser.get(session.pay_url).text)
            shown = browser.post(session.pay_url, data={"action": action, "csrf_token": token})
        assert shown.status_code == 200
        assert f'href="{live.merchant_url}/done?order={out_trade_no}"' in shown.text
    assert live.query(failed).trade_state is TradeState.PAYERROR
    assert live.query(cancelled).trade_state is TradeState.NOTPAY
    assert live.deliveries(failed) == [] and live.deliveries(cancelled) == []


def test_an_unpaid_order_closes_and_a_paid_one_does_not(live: Live) -> None:
    unpaid, paid = new_trade_no(), new_trade_no()
    live.create(live.request(unpaid))
    live.create(live.request(paid))
    live.sandbox("POST", f"/sandbox/orders/{paid}/pay")

    live.run(lambda provider: provider.close(unpaid))
    assert live.query(unpaid).trade_state is TradeState.CLOSED
    with pytest.raises(ProviderRefused) as refused:
        live.run(lambda provider: provider.close(paid))
    assert (refused.value.status, refused.value.code) == (400, "ORDERPAID")
    with pytest.raises(ProviderRefused) as refused:
        live.create(live.request(unpaid))
    assert refused.value.code == "ORDERCLOSED"


def test_an_unknown_order_is_refused(live: Live) -> None:
    with pytest.raises(ProviderRefused) as refused:
        live.query(new_trade_no())
    assert (refused.value.status, refused.value.code) == (404, "ORDER_NOT_EXIST")


def test_a_paid_order_refunds(live: Live) -> None:
    out_trade_no = new_trade_no()
    live.create(live.request(out_trade_no, amount_fen=10000))
    live.sandbox("POST", f"/sandbox/orders/{out_trade_no}/pay")

    def refund(out_refund_no: str, fen: int) -> Callable[[WechatPayV3Provider], Awaitable[Any]]:
        return lambda provider: provider.refund(
            out_trade_no, out_refund_no, fen, 10000, "CNY", "捐赠人申请退款"
        )

    first = live.run(refund("R1", 3000))
    assert (first.out_refund_no, first.status, first.amount_fen) == ("R1", RefundStatus.SUCCESS, 3000)
    assert live.run(refund("R1", 3000)).refund_id == first.refund_id
    assert live.query(out_trade_no).trade_state is TradeState.REFUND
    with pytest.raises(ProviderRefused) as refused:
        live.run(refund("R2", 7001))
    assert refused.value.code == "INVALID_REQUEST"


def test_a_notification_answered_with_500_is_delivered_on_retry(live: Live) -> None:
    out_trade_no = new_trade_no()
    live.create(live.request(out_trade_no))
    live.merchant.answer_first(out_trade_no, 500)
    live.sandbox("POST", f"/sandbox/orders/{out_trade_no}/pay")

    first, second = live.merchant.wait_for(out_trade_no, 2)
    assert (first.status, second.status) == (500, 204)
    assert first.notification_id == second.notification_id
    eventually(
        lambda: live.deliveries(out_trade_no)[0]["state"] == "delivered",
        timeout=5,
        what="the delivery's record",
    )
    (delivery,) = live.deliveries(out_trade_no)
    assert (delivery["attempts"], delivery["last_status"]) == (2, 204)


def test_notifications_wait_for_a_merchant_that_is_down(live: Live) -> None:
    out_trade_no = new_trade_no()
    (port,) = free_ports(1)
    live.create(replace(live.request(out_trade_no), notify_url=f"http://127.0.0.1:{port}/notify"))
    live.sandbox("POST", f"/sandbox/orders/{out_trade_no}/pay")

    def refused_twice() -> bool:
        (delivery,) = live.deliveries(out_trade_no)
        return bool(delivery["attempts"] >= 2 and delivery["last_status"] is None)

    eventually(refused_twice, timeout=10, what="two refused connections")
    with serving(live.merchant.app, port):
        (received,) = live.merchant.wait_for(out_trade_no, 1)
    assert received.status == 204
    (delivery,) = live.deliveries(out_trade_no)
    assert delivery["state"] == "delivered" and delivery["attempts"] >= 3


def test_a_notification_sent_again_is_verified_again(live: Live) -> None:
    out_trade_no = new_trade_no()
    live.create(live.request(out_trade_no))
    live.sandbox("POST", f"/sandbox/orders/{out_trade_no}/pay")
    live.merchant.wait_for(out_trade_no, 1)
    live.sandbox("POST", f"/sandbox/orders/{out_trade_no}/notify")
    first, again = live.merchant.wait_for(out_trade_no, 2)
    assert first.notification_id == again.notification_id
    # The same payment, signed anew: another nonce, which the merchant records as a new one.
    assert first.result is not None and again.result is not None
    assert first.result.nonce is not None and again.result.nonce is not None
    assert first.result.nonce.value != again.result.nonce.value
    assert replace(first.result, nonce=None) == replace(again.result, nonce=None)


def test_after_a_key_rotation_responses_and_notifications_still_verify(live: Live) -> None:
    rotated = live.sandbox("POST", "/sandbox/platform-keys/rotate")
    assert rotated["serials"][-1] == rotated["serial"] and len(rotated["serials"]) == 2
    out_trade_no = new_trade_no()
    live.create(live.request(out_trade_no))
    live.sandbox("POST", f"/sandbox/orders/{out_trade_no}/pay")
    # The merchant's key directory was read before the rotation: it finds the new key by its serial.
    (received,) = live.merchant.wait_for(out_trade_no, 1)
    assert received.status == 204
    assert live.query(out_trade_no).trade_state is TradeState.SUCCESS
    unsigned = httpx.post(f"{live.sandbox_url}/v3/refund/domestic/refunds", content=b"{}")
    assert unsigned.headers["Wechatpay-Serial"] == rotated["serial"]


def test_the_sandbox_refuses_an_unsigned_request_with_a_signed_answer(live: Live) -> None:
    response = httpx.get(f"{live.sandbox_url}/v3/pay/transactions/out-trade-no/T1234567?mchid=1900000109")
    assert response.status_code == 401
    assert response.json()["code"] == "SIGN_ERROR"
    platform_keys = PlatformKeyDirectory.from_settings(live.settings)
    verify_body(response.headers, response.content, platform_keys, datetime.now(UTC))


def test_a_request_signed_with_another_key_is_refused(live: Live, tmp_path: Path) -> None:
    other_key = tmp_path / "other-merchant.pem"
    write_new_file(other_key, private_pem(new_rsa_key()), 0o600)
    with pytest.raises(ProviderRefused) as refused:
        live.run(lambda provider: provider.query(new_trade_no()), wechatpay_merchant_key_path=str(other_key))
    assert (refused.value.status, refused.value.code) == (401, "SIGN_ERROR")


def tampering_proxy(sandbox_url: str, tamper: Callable[[bytes], bytes]) -> FastAPI:
    """Forwards to the sandbox and hands the answer back with its headers, the body through `tamper`."""
    proxy = FastAPI()

    @proxy.api_route("/{path:path}", methods=["GET", "POST"])
    async def forward(path: str, request: Request) -> Response:
        async with httpx.AsyncClient() as http:
            answer = await http.request(
                request.method,
                f"{sandbox_url}/{path}",
                params=request.query_params,
                content=await request.body(),
                headers={
                    k: v for k, v in request.headers.items() if k.lower() in ("authorization", "content-type")
                },
            )
        kept = {k: v for k, v in answer.headers.items() if k.lower().startswith("wechatpay-")}
        return Response(tamper(answer.content), answer.status_code, kept, media_type="application/json")

    return proxy


def test_a_tampered_response_is_refused_by_the_client(live: Live) -> None:
    out_trade_no = new_trade_no()
    live.create(live.request(out_trade_no))
    (honest_port, tampering_port) = free_ports(2)
    honest = tampering_proxy(live.sandbox_url, lambda body: body)
    forged = tampering_proxy(live.sandbox_url, lambda body: body.replace(b'"NOTPAY"', b'"SUCCESS"'))
    with serving(honest, honest_port) as honest_url, serving(forged, tampering_port) as forged_url:
        through_honest = live.run(lambda provider: provider.query(out_trade_no), payment_base_url=honest_url)
        assert through_honest.trade_state is TradeState.NOTPAY
        with pytest.raises(UnverifiedResponse) as refused:
            live.run(lambda provider: provider.query(out_trade_no), payment_base_url=forged_url)
    assert refused.value.reason == "bad signature"


def test_a_provider_that_cannot_be_reached_is_unavailable(live: Live) -> None:
    (port,) = free_ports(1)
    with pytest.raises(ProviderUnavailable):
        live.run(lambda provider: provider.query(new_trade_no()), payment_base_url=f"http://127.0.0.1:{port}")
