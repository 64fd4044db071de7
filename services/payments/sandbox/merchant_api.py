"""The merchant-facing WeChat Pay v3 endpoints the sandbox serves: create (H5), query, close, refund.

Each request's Authorization is checked against the merchant's key before its
body is parsed (401 SIGN_ERROR otherwise); each answer, errors included, is
signed with the current platform key. Bodies are validated as WeChat Pay does
the fields the project sends (400 PARAM_ERROR otherwise); other fields are ignored.
"""

from __future__ import annotations

from typing import TypeVar

from fastapi import APIRouter, Request, Response
from pydantic import AwareDatetime, BaseModel, Field, StrictInt, ValidationError

from services.payments.provider import ProviderRefused
from services.payments.sandbox.deps import MerchantBody, SimulatorDep
from services.payments.sandbox.orders import NewOrder, Order, Refund
from services.payments.sandbox.simulator import WechatPaySimulator
from services.payments.wechatpay_v3 import rfc3339

OUT_TRADE_NO = r"^[0-9A-Za-z_\-|*]{6,32}$"


class _Amount(BaseModel):
    total: StrictInt = Field(ge=1)
    currency: str = Field(default="CNY", pattern="^CNY$")


class _H5Info(BaseModel):
    type: str


class _SceneInfo(BaseModel):
    payer_client_ip: str = Field(min_length=1, max_length=45)
    h5_info: _H5Info


class H5OrderRequest(BaseModel):
    appid: str
    mchid: str
    description: str = Field(min_length=1, max_length=127)
    out_trade_no: str = Field(pattern=OUT_TRADE_NO)
    time_expire: AwareDatetime
    notify_url: str = Field(pattern=r"^https?://", max_length=255)
    amount: _Amount
    scene_info: _SceneInfo


class CloseRequest(BaseModel):
    mchid: str


class _RefundAmount(BaseModel):
    refund: StrictInt = Field(ge=1)
    total: StrictInt = Field(ge=1)
    currency: str = Field(pattern="^CNY$")


class RefundRequest(BaseModel):
    out_trade_no: str
    out_refund_no: str = Field(pattern=r"^[0-9A-Za-z_\-|*@]{1,64}$")
    reason: str = Field(default="", max_length=80)
    amount: _RefundAmount


M = TypeVar("M", bound=BaseModel)


def _parsed(model: type[M], body: bytes) -> M:
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        raise ProviderRefused(400, "PARAM_ERROR", f"{where}: {problem['msg']}") from error


router = APIRouter(prefix="/v3", include_in_schema=False)


def _own_merchant(sim: WechatPaySimulator, mchid: str | None, appid: str | None = None) -> None:
    if mchid != sim.merchant.mchid:
        raise ProviderRefused(400, "PARAM_ERROR", "mchid 与请求签名的商户不符")
    if appid is not None and appid != sim.merchant.appid:
        raise ProviderRefused(400, "APPID_MCHID_NOT_MATCH", "appid 和 mch_id 不匹配")


@router.post("/pay/transactions/h5")
async def create_h5(sim: SimulatorDep, body: MerchantBody) -> Response:
    req = _parsed(H5OrderRequest, body)
    _own_merchant(sim, req.mchid, req.appid)
    terms = NewOrder(
        out_trade_no=req.out_trade_no,
        appid=req.appid,
        mchid=req.mchid,
        description=req.description,
        total_fen=req.amount.total,
        currency=req.amount.currency,
        notify_url=req.notify_url,
        time_expire=req.time_expire,
    )
    order = sim.orders.create(terms, sim.clock())
    return sim.signed(200, {"h5_url": sim.h5_url(order)})


@router.get("/pay/transactions/out-trade-no/{out_trade_no}")
async def query(out_trade_no: str, request: Request, sim: SimulatorDep, _: MerchantBody) -> Response:
    _own_merchant(sim, request.query_params.get("mchid"))
    return sim.signed(200, sim.orders.by_trade_no(out_trade_no).transaction())


@router.post("/pay/transactions/out-trade-no/{out_trade_no}/close")
async def close(out_trade_no: str, sim: SimulatorDep, body: MerchantBody) -> Response:
    _own_merchant(sim, _parsed(CloseRequest, body).mchid)
    sim.orders.close(sim.orders.by_trade_no(out_trade_no))
    return sim.signed(204)


@router.post("/refund/domestic/refunds")
async def refund(sim: SimulatorDep, body: MerchantBody) -> Response:
    req = _parsed(RefundRequest, body)
    try:
        order = sim.orders.by_trade_no(req.out_trade_no)
    except ProviderRefused as refusal:
        raise ProviderRefused(404, "RESOURCE_NOT_EXISTS", "订单不存在") from refusal
    amount, now = req.amount, sim.clock()
    done = sim.orders.refund(order, req.out_refund_no, amount.refund, amount.total, req.reason, now)
    return sim.signed(200, refund_view(order, done))


def refund_view(order: Order, refund: Refund) -> dict[str, object]:
    """WeChat Pay's refund object."""
    total, currency = order.terms.total_fen, order.terms.currency
    when = rfc3339(refund.created_at)
    return {
        "refund_id": refund.refund_id,
        "out_refund_no": refund.out_refund_no,
        "transaction_id": order.transaction_id,
        "out_trade_no": order.out_trade_no,
        "channel": "ORIGINAL",
        "user_received_account": "支付用户零钱",
        "create_time": when,
        "success_time": when,
        "status": "SUCCESS",
        "funds_account": "AVAILABLE",
        "amount": {
            "total": total,
            "refund": refund.amount_fen,
            "payer_total": total,
            "payer_refund": refund.amount_fen,
            "settlement_total": total,
            "settlement_refund": refund.amount_fen,
            "discount_refund": 0,
            "currency": currency,
        },
    }
