"""The simulated provider behind the sandbox's routes: orders, the merchant's identity, platform
keys and notifications. The routers are its HTTP faces; this holds what they share."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from fastapi import Response

from services.payments.provider import NotificationRefused, ProviderRefused
from services.payments.sandbox.notifier import Delivery, Notifier
from services.payments.sandbox.orders import Order, OrderBook
from services.payments.sandbox.platform_keys import SandboxKeyRing
from services.payments.wechatpay_v3 import (
    Authorization,
    check_timestamp,
    encrypt_resource,
    request_signature_matches,
    rfc3339,
)

TRANSACTION_SUCCESS = "TRANSACTION.SUCCESS"


@dataclass(frozen=True)
class Merchant:
    """The one merchant the sandbox serves, as the provider knows it."""

    mchid: str
    appid: str
    public_key: RSAPublicKey
    serial_no: str
    api_v3_key: bytes
    # Where the payer may be sent back to: WeChat Pay checks redirect_url against the H5 domain.
    h5_origin: str


@dataclass(frozen=True)
class Notification:
    notification_id: str
    url: str
    body: bytes


class WechatPaySimulator:
    def __init__(
        self,
        merchant: Merchant,
        keys: SandboxKeyRing,
        notifier: Notifier,
        payment_base_url: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.merchant = merchant
        self.keys = keys
        self.notifier = notifier
        self.orders = OrderBook()
        self.clock = clock
        self._payment_base_url = payment_base_url.rstrip("/")
        self._notifications: dict[str, Notification] = {}

    def authenticate(self, method: str, url: str, body: bytes, header: str | None) -> None:
        """Refuse (401 SIGN_ERROR) a request not signed by this merchant's key, or signed too long ago."""
        if not header:
            raise ProviderRefused(401, "SIGN_ERROR", "缺少 Authorization 请求头")
        try:
            auth = Authorization.parse(header)
        except ValueError as error:
            raise ProviderRefused(401, "SIGN_ERROR", f"Authorization 格式错误: {error}") from error
        if auth.mchid != self.merchant.mchid:
            raise ProviderRefused(401, "SIGN_ERROR", f"商户号 {auth.mchid} 与本沙箱的商户不符")
        if auth.serial_no != self.merchant.serial_no:
            raise ProviderRefused(401, "SIGN_ERROR", "商户证书序列号有误")
        try:
            check_timestamp(auth.timestamp, self.clock(), "timestamp")
        except NotificationRefused as refused:
            raise ProviderRefused(401, "SIGN_ERROR", f"签名时间戳无效: {refused.reason}") from refused
        if not request_signature_matches(auth, self.merchant.public_key, method, url, body):
            raise ProviderRefused(401, "SIGN_ERROR", "签名错误")

    def signed(self, status: int, payload: object | None = None) -> Response:
        """A response signed with the current platform key, as every WeChat Pay v3 answer is."""
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False).encode()
        headers = {"Request-ID": str(uuid.uuid4()), **self.keys.sign_headers(body)}
        media_type = "application/json" if body else None
        return Response(body, status_code=status, headers=headers, media_type=media_type)

    def h5_url(self, order: Order) -> str:
        return f"{self._payment_base_url}/pay/{order.prepay_id}"

    def redirect_allowed(self, url: str) -> bool:
        return _origin(url) == self.merchant.h5_origin

    def pay(self, order: Order) -> bool:
        """Pay the order and start notifying the merchant; False (and no notification) if paid before."""
        now = self.clock()
        if not self.orders.pay(order, now):
            return False
        notification_id = str(uuid.uuid4())
        body = transaction_notification(self.merchant.api_v3_key, notification_id, order.transaction(), now)
        notification = Notification(notification_id, order.terms.notify_url, body)
        self._notifications[order.out_trade_no] = notification
        self._send(order, notification)
        return True

    def resend(self, order: Order) -> Delivery:
        """The order's notification once more, same id and content: a duplicate the merchant must absorb."""
        notification = self._notifications.get(order.out_trade_no)
        if notification is None:
            raise ProviderRefused(409, "NO_NOTIFICATION", "该订单尚未支付，没有通知")
        return self._send(order, notification)

    def _send(self, order: Order, notification: Notification) -> Delivery:
        return self.notifier.deliver(
            order.out_trade_no, notification.notification_id, notification.url, notification.body
        )


def transaction_notification(
    api_v3_key: bytes, notification_id: str, transaction: dict[str, object], now: datetime
) -> bytes:
    """A TRANSACTION.SUCCESS notification's body, the transaction encrypted under the APIv3 key."""
    resource = encrypt_resource(
        api_v3_key,
        json.dumps(transaction, ensure_ascii=False).encode(),
        associated_data="transaction",
        original_type="transaction",
    )
    envelope = {
        "id": notification_id,
        "create_time": rfc3339(now),
        "resource_type": "encrypt-resource",
        "event_type": TRANSACTION_SUCCESS,
        "summary": "支付成功",
        "resource": resource,
    }
    return json.dumps(envelope, ensure_ascii=False).encode()


def _origin(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.hostname}:{port}"


def origin_of(url: str) -> str:
    """scheme://host:port of an http(s) URL, the port written out so that equal origins compare equal."""
    origin = _origin(url)
    if origin is None:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return origin
