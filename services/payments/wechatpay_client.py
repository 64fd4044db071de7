"""`WechatPayV3Provider`: the PaymentProvider for WeChat Pay API v3 (H5 payments), over httpx.

Paths as WeChat Pay's own: `POST /v3/pay/transactions/h5` (answers `h5_url`),
`GET /v3/pay/transactions/out-trade-no/{no}?mchid=…`,
`POST /v3/pay/transactions/out-trade-no/{no}/close`, `POST /v3/refund/domestic/refunds`.
Every request is signed with the merchant key (the exact bytes sent: path and
query as on the wire, the body as serialised once); every 2xx response's
signature is verified with the platform keys before its body is read.

The payer returns to `return_url` after paying: WeChat H5 takes it as a
`redirect_url` query parameter appended to `h5_url`, which is what `pay_url` is.

Errors: no connection, a timeout or a 5xx is `ProviderUnavailable`; a 2xx whose
signature fails is `UnverifiedResponse` (a ProviderUnavailable: the outcome is
unknown); a 4xx is `ProviderRefused` with WeChat's code and message.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Self
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import AwareDatetime, BaseModel, StrictInt, ValidationError

from services.payments.provider import (
    Nonce,
    NonceStore,
    NotificationRefused,
    PaymentRequest,
    PaymentResult,
    PaymentSession,
    ProviderRefused,
    ProviderUnavailable,
    RefundResult,
    RefundStatus,
    TradeState,
    UnverifiedResponse,
)
from services.payments.wechatpay_keys import (
    PlatformKeyDirectory,
    load_api_v3_key,
    load_merchant_key,
    merchant_serial_no,
)
from services.payments.wechatpay_v3 import (
    CHINA_TIME,
    NONCE_WINDOW,
    PlatformKeys,
    decrypt_resource,
    parse_json_object,
    rfc3339,
    sign_request,
    unix_millis,
    verify_body,
    verify_notification,
)
from services.platform.settings import Settings

SUPPORTED_CURRENCY = "CNY"
TRANSACTION_RESOURCE = "transaction"


# An idle connection is let go after this, before the server would close it (uvicorn, the
# sandbox's server, after 5 s): a request sent on a connection the server is closing at
# that moment fails with a ReadError, and the donor's pledge with a 503.
KEEPALIVE_EXPIRY_S = 4.0
# httpx's own defaults for the rest, which a Limits of our own would otherwise leave
# unlimited: at most this many connections to the provider, this many kept idle.
MAX_CONNECTIONS = 100
MAX_IDLE_CONNECTIONS = 20


class _Amount(BaseModel):
    total: StrictInt
    currency: str = SUPPORTED_CURRENCY


class _Transaction(BaseModel):
    """The fields of WeChat Pay's transaction object that a payment's outcome needs."""

    mchid: str
    appid: str
    out_trade_no: str
    transaction_id: str | None = None
    trade_state: TradeState
    amount: _Amount
    success_time: AwareDatetime | None = None


class _RefundAmount(BaseModel):
    refund: StrictInt


class _Refund(BaseModel):
    refund_id: str
    out_refund_no: str
    status: RefundStatus
    amount: _RefundAmount


class WechatPayV3Provider:
    name = "wechatpay"

    def __init__(
        self,
        *,
        base_url: str,
        mchid: str,
        appid: str,
        merchant_key: RSAPrivateKey,
        merchant_serial: str,
        api_v3_key: bytes,
        platform_keys: PlatformKeys,
        nonces: NonceStore | None = None,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.mchid = mchid
        self.appid = appid
        self._merchant_key = merchant_key
        self._merchant_serial = merchant_serial
        self._api_v3_key = api_v3_key
        self._platform_keys = platform_keys
        self._nonces = nonces
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            timeout=timeout_s,
            limits=httpx.Limits(
                max_connections=MAX_CONNECTIONS,
                max_keepalive_connections=MAX_IDLE_CONNECTIONS,
                keepalive_expiry=KEEPALIVE_EXPIRY_S,
            ),
        )
        self._base_url = base_url.rstrip("/")
        self._clock = clock or (lambda: datetime.now(CHINA_TIME))

    @classmethod
    def from_settings(
        cls, settings: Settings, nonces: NonceStore | None = None, http: httpx.AsyncClient | None = None
    ) -> WechatPayV3Provider:
        """nonces None: whoever acts on a notification records its `PaymentResult.nonce` with
        what it writes and refuses a replay there (the API's donor store, in the transaction
        that marks the pledge paid), so checking it here first would be one more read."""
        merchant_key = load_merchant_key(settings)
        return cls(
            base_url=settings.payment_base_url,
            mchid=settings.wechatpay_mch_id,
            appid=settings.wechatpay_appid,
            merchant_key=merchant_key,
            merchant_serial=merchant_serial_no(merchant_key),
            api_v3_key=load_api_v3_key(settings),
            platform_keys=PlatformKeyDirectory.from_settings(settings),
            nonces=nonces,
            http=http,
        )

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # --- the PaymentProvider protocol ---

    async def create_payment(self, req: PaymentRequest) -> PaymentSession:
        if req.currency != SUPPORTED_CURRENCY:
            raise ValueError(f"WeChat Pay takes {SUPPORTED_CURRENCY} only, not {req.currency}")
        body = {
            "appid": self.appid,
            "mchid": self.mchid,
            "description": req.description,
            "out_trade_no": req.out_trade_no,
            "time_expire": rfc3339(req.expires_at),
            "notify_url": req.notify_url,
            "amount": {"total": req.amount_fen, "currency": req.currency},
            "scene_info": {
                "payer_client_ip": req.payer_client_ip or "127.0.0.1",
                "h5_info": {"type": "Wap"},
            },
        }
        answer = await self._call("POST", "/v3/pay/transactions/h5", body=body)
        h5_url = answer.get("h5_url")
        if not isinstance(h5_url, str) or not h5_url:
            raise ProviderUnavailable("the provider's answer has no h5_url")
        separator = "&" if "?" in h5_url else "?"
        return PaymentSession(
            pay_url=f"{h5_url}{separator}{urlencode({'redirect_url': req.return_url})}",
            prepay_id=prepay_id_of(h5_url),
        )

    def parse_notification(self, headers: Mapping[str, str], body: bytes, now: datetime) -> PaymentResult:
        signed = verify_notification(headers, body, self._platform_keys, self._nonces, now)
        envelope = parse_json_object(body, "the notification")
        resource = envelope.get("resource")
        if isinstance(resource, Mapping) and resource.get("original_type") != TRANSACTION_RESOURCE:
            raise NotificationRefused(f"not a transaction notification: {envelope.get('event_type')!r}")
        plaintext = decrypt_resource(self._api_v3_key, resource)
        try:
            transaction = _Transaction.model_validate_json(plaintext)
        except ValidationError as error:
            raise NotificationRefused(f"malformed JSON in the resource: {_first_problem(error)}") from error
        if transaction.mchid != self.mchid:
            raise NotificationRefused(f"mchid {transaction.mchid!r} is not this merchant's")
        if transaction.appid != self.appid:
            raise NotificationRefused(f"appid {transaction.appid!r} is not this merchant's")
        nonce = Nonce(signed.nonce, unix_millis(now), NONCE_WINDOW // timedelta(milliseconds=1))
        return replace(_payment_result(transaction), nonce=nonce)

    async def query(self, out_trade_no: str) -> PaymentResult:
        path = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}"
        answer = await self._call("GET", path, params={"mchid": self.mchid})
        try:
            transaction = _Transaction.model_validate(answer)
        except ValidationError as error:
            raise ProviderUnavailable(f"malformed transaction: {_first_problem(error)}") from error
        if (transaction.mchid, transaction.appid, transaction.out_trade_no) != (
            self.mchid,
            self.appid,
            out_trade_no,
        ):
            raise ProviderUnavailable("the provider answered about another merchant's or another order")
        return _payment_result(transaction)

    async def refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        currency: str,
        reason: str,
    ) -> RefundResult:
        body = {
            "out_trade_no": out_trade_no,
            "out_refund_no": out_refund_no,
            "reason": reason,
            "amount": {"refund": refund_fen, "total": total_fen, "currency": currency},
        }
        answer = await self._call("POST", "/v3/refund/domestic/refunds", body=body)
        try:
            refund = _Refund.model_validate(answer)
        except ValidationError as error:
            raise ProviderUnavailable(f"malformed refund: {_first_problem(error)}") from error
        return RefundResult(refund.out_refund_no, refund.refund_id, refund.status, refund.amount.refund)

    async def close(self, out_trade_no: str) -> None:
        path = f"/v3/pay/transactions/out-trade-no/{quote(out_trade_no, safe='')}/close"
        await self._call("POST", path, body={"mchid": self.mchid})

    # --- one signed round trip ---

    async def _call(
        self, method: str, path: str, *, body: object = None, params: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """The verified JSON answer ({} for 204), or one of the three errors."""
        content = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        request = self._http.build_request(
            method, f"{self._base_url}{path}", params=params, content=content, headers=headers
        )
        # What the provider checks is the path and query as they go on the wire.
        signed_url = request.url.raw_path.decode("ascii")
        auth = sign_request(
            self._merchant_key, self.mchid, self._merchant_serial, method, signed_url, content, self._clock()
        )
        request.headers["Authorization"] = auth.header()
        try:
            response = await self._http.send(request)
        except httpx.HTTPError as error:
            raise ProviderUnavailable(f"{method} {path}: {type(error).__name__}: {error}") from error
        if response.status_code >= 500:
            raise ProviderUnavailable(f"{method} {path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            code, message = _error_of(response)
            raise ProviderRefused(response.status_code, code, message)
        try:
            verify_body(response.headers, response.content, self._platform_keys, self._clock())
        except NotificationRefused as refused:
            raise UnverifiedResponse(refused.reason) from refused
        if not response.content:
            return {}
        try:
            return parse_json_object(response.content, f"{method} {path}")
        except NotificationRefused as refused:
            raise ProviderUnavailable(refused.reason) from refused


def prepay_id_of(h5_url: str) -> str:
    """WeChat's h5_url carries `prepay_id=` in its query; the sandbox's ends in /pay/<prepay_id>."""
    parts = urlsplit(h5_url)
    from_query = parse_qs(parts.query).get("prepay_id")
    return from_query[0] if from_query else parts.path.rstrip("/").rsplit("/", 1)[-1]


def _payment_result(transaction: _Transaction) -> PaymentResult:
    return PaymentResult(
        out_trade_no=transaction.out_trade_no,
        transaction_id=transaction.transaction_id or None,
        trade_state=transaction.trade_state,
        amount_fen=transaction.amount.total,
        currency=transaction.amount.currency,
        success_time=transaction.success_time,
    )


def _error_of(response: httpx.Response) -> tuple[str, str]:
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if isinstance(answer, dict):
        return str(answer.get("code", "UNKNOWN")), str(answer.get("message", ""))
    return "UNKNOWN", response.text[:200]


def _first_problem(error: ValidationError) -> str:
    problem = error.errors(include_url=False)[0]
    return f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
