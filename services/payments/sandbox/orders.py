"""The sandbox's orders and their states, in memory: what WeChat Pay keeps for each H5 order.

States: NOTPAY → SUCCESS (paid) → REFUND (once anything is refunded);
NOTPAY → PAYERROR (the payer's payment failed); NOTPAY or PAYERROR → CLOSED
(the merchant closed it). An order past its `time_expire` can no longer be
paid and stays NOTPAY until the merchant closes it. Refunds complete at once.
What the provider refuses raises `ProviderRefused`, with WeChat Pay's status,
code and message: the sandbox answers with exactly what the client then raises.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime

from services.payments.provider import ProviderRefused, TradeState
from services.payments.wechatpay_v3 import rfc3339

STATE_DESCRIPTIONS = {
    TradeState.SUCCESS: "支付成功",
    TradeState.NOTPAY: "订单未支付",
    TradeState.CLOSED: "订单已关闭",
    TradeState.PAYERROR: "支付失败",
    TradeState.REFUND: "转入退款",
}


@dataclass(frozen=True)
class NewOrder:
    out_trade_no: str
    appid: str
    mchid: str
    description: str
    total_fen: int
    currency: str
    notify_url: str
    time_expire: datetime


@dataclass
class Refund:
    out_refund_no: str
    refund_id: str
    amount_fen: int
    reason: str
    created_at: datetime


@dataclass
class Order:
    terms: NewOrder
    prepay_id: str
    created_at: datetime
    trade_state: TradeState = TradeState.NOTPAY
    transaction_id: str | None = None
    success_time: datetime | None = None
    payer_openid: str | None = None
    refunds: dict[str, Refund] = field(default_factory=dict)

    @property
    def out_trade_no(self) -> str:
        return self.terms.out_trade_no

    @property
    def refunded_fen(self) -> int:
        return sum(refund.amount_fen for refund in self.refunds.values())

    def transaction(self) -> dict[str, object]:
        """WeChat Pay's transaction object: the query's answer and a notification's resource."""
        terms = self.terms
        amount: dict[str, object] = {"total": terms.total_fen, "currency": terms.currency}
        answer: dict[str, object] = {
            "appid": terms.appid,
            "mchid": terms.mchid,
            "out_trade_no": terms.out_trade_no,
            "trade_type": "MWEB",
            "trade_state": str(self.trade_state),
            "trade_state_desc": STATE_DESCRIPTIONS.get(self.trade_state, str(self.trade_state)),
            "attach": "",
            "amount": amount,
        }
        if self.transaction_id is not None and self.success_time is not None:
            amount.update(payer_total=terms.total_fen, payer_currency=terms.currency)
            answer.update(
                transaction_id=self.transaction_id,
                bank_type="OTHERS",
                success_time=rfc3339(self.success_time),
                payer={"openid": self.payer_openid},
            )
        return answer


class OrderBook:
    def __init__(self) -> None:
        self._by_trade_no: dict[str, Order] = {}
        self._by_prepay_id: dict[str, Order] = {}

    def create(self, terms: NewOrder, now: datetime) -> Order:
        """The order's prepay session; the same terms again (a merchant's retry) get the same one."""
        existing = self._by_trade_no.get(terms.out_trade_no)
        if existing is not None:
            if existing.trade_state in (TradeState.SUCCESS, TradeState.REFUND):
                raise ProviderRefused(400, "ORDERPAID", "该订单已支付")
            if existing.trade_state is TradeState.CLOSED:
                raise ProviderRefused(400, "ORDERCLOSED", "该订单已关闭")
            if existing.terms != terms:
                raise ProviderRefused(400, "INVALID_REQUEST", "商户订单号重复，且参数与原订单不一致")
            return existing
        order = Order(terms, prepay_id=f"wx{now:%Y%m%d%H%M%S}{secrets.token_hex(10)}", created_at=now)
        self._by_trade_no[terms.out_trade_no] = order
        self._by_prepay_id[order.prepay_id] = order
        return order

    def by_trade_no(self, out_trade_no: str) -> Order:
        order = self._by_trade_no.get(out_trade_no)
        if order is None:
            raise ProviderRefused(404, "ORDER_NOT_EXIST", "订单不存在")
        return order

    def find_prepay_id(self, prepay_id: str) -> Order | None:
        return self._by_prepay_id.get(prepay_id)

    def pay(self, order: Order, now: datetime) -> bool:
        """True when this call paid it; False when it was paid already (a second click)."""
        if order.trade_state in (TradeState.SUCCESS, TradeState.REFUND):
            return False
        self._check_payable(order, now)
        order.trade_state = TradeState.SUCCESS
        order.transaction_id = f"4200{now:%Y%m%d}{secrets.randbelow(10**16):016d}"
        order.success_time = now
        order.payer_openid = f"oSandbox{secrets.token_hex(10)}"
        return True

    def fail(self, order: Order, now: datetime) -> None:
        self._check_payable(order, now)
        order.trade_state = TradeState.PAYERROR

    def close(self, order: Order) -> None:
        if order.trade_state in (TradeState.SUCCESS, TradeState.REFUND):
            raise ProviderRefused(400, "ORDERPAID", "订单已支付，不能关闭")
        order.trade_state = TradeState.CLOSED

    def refund(
        self, order: Order, out_refund_no: str, refund_fen: int, total_fen: int, reason: str, now: datetime
    ) -> Refund:
        """The refund, completed at once; the same out_refund_no again gets the same refund."""
        if order.trade_state not in (TradeState.SUCCESS, TradeState.REFUND):
            raise ProviderRefused(400, "INVALID_REQUEST", "订单未支付，不能退款")
        if total_fen != order.terms.total_fen:
            raise ProviderRefused(400, "INVALID_REQUEST", "订单金额与原订单不一致")
        existing = order.refunds.get(out_refund_no)
        if existing is not None:
            if existing.amount_fen != refund_fen:
                raise ProviderRefused(400, "INVALID_REQUEST", "商户退款单号重复，且金额不一致")
            return existing
        if order.refunded_fen + refund_fen > order.terms.total_fen:
            raise ProviderRefused(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
        refund = Refund(
            out_refund_no,
            refund_id=f"5030{now:%Y%m%d}{secrets.randbelow(10**17):017d}",
            amount_fen=refund_fen,
            reason=reason,
            created_at=now,
        )
        order.refunds[out_refund_no] = refund
        order.trade_state = TradeState.REFUND
        return refund

    @staticmethod
    def _check_payable(order: Order, now: datetime) -> None:
        if order.trade_state is TradeState.CLOSED:
            raise ProviderRefused(400, "ORDERCLOSED", "订单已关闭")
        if order.trade_state is not TradeState.NOTPAY:
            raise ProviderRefused(400, "INVALID_REQUEST", f"订单状态为 {order.trade_state}，不能支付")
        if now > order.terms.time_expire:
            raise ProviderRefused(400, "ORDER_EXPIRED", "订单已过期")
