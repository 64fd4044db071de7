"""parse_notification without a network: notifications built the way the sandbox builds them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from services.payments.provider import InMemoryNonceStore, NotificationRefused, PaymentProvider, TradeState
from services.payments.sandbox.simulator import transaction_notification
from services.payments.wechatpay_client import KEEPALIVE_EXPIRY_S, WechatPayV3Provider, prepay_id_of
from services.payments.wechatpay_keys import new_rsa_key
from services.payments.wechatpay_v3 import StaticPlatformKeys, encrypt_resource, sign_body

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
API_V3_KEY = b"0123456789abcdefghijABCDEFGHIJ01"
MCHID, APPID = "1900000109", "wxd678efh567hg6787"


@pytest.fixture(scope="module")
def platform_key() -> RSAPrivateKey:
    return new_rsa_key()


@pytest.fixture
def provider(platform_key: RSAPrivateKey) -> WechatPayV3Provider:
    return WechatPayV3Provider(
        base_url="http://127.0.0.1:9",
        mchid=MCHID,
        appid=APPID,
        merchant_key=platform_key,  # never used: nothing is sent
        merchant_serial="MERCHANT",
        api_v3_key=API_V3_KEY,
        platform_keys=StaticPlatformKeys({"PLATFORM": platform_key.public_key()}),
        nonces=InMemoryNonceStore(),
    )


def transaction(**changes: object) -> dict[str, object]:
    paid = {
        "appid": APPID,
        "mchid": MCHID,
        "out_trade_no": "T-100001",
        "transaction_id": "4200000000202605011234567890",
        "trade_type": "MWEB",
        "trade_state": "SUCCESS",
        "success_time": "2026-05-01T19:59:58+08:00",
        "amount": {"total": 5005, "payer_total": 5005, "currency": "CNY", "payer_currency": "CNY"},
    }
    return {**paid, **changes}


def signed(key: RSAPrivateKey, body: bytes) -> dict[str, str]:
    return sign_body(key, "PLATFORM", body, NOW).headers()


def test_a_notification_is_verified_and_read(
    provider: WechatPayV3Provider, platform_key: RSAPrivateKey
) -> None:
    body = transaction_notification(API_V3_KEY, "EV-1", transaction(), NOW)
    result = provider.parse_notification(signed(platform_key, body), body, NOW)
    assert result.out_trade_no == "T-100001"
    assert result.trade_state is TradeState.SUCCESS
    assert (result.amount_fen, result.currency) == (5005, "CNY")
    assert result.transaction_id == "4200000000202605011234567890"
    assert result.success_time == NOW - timedelta(seconds=2)


def test_the_same_notification_again_is_a_replay(
    provider: WechatPayV3Provider, platform_key: RSAPrivateKey
) -> None:
    body = transaction_notification(API_V3_KEY, "EV-1", transaction(), NOW)
    headers = signed(platform_key, body)
    provider.parse_notification(headers, body, NOW)
    with pytest.raises(NotificationRefused, match="replayed nonce"):
        provider.parse_notification(headers, body, NOW)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"mchid": "1900000110"}, "mchid '1900000110' is not this merchant's"),
        ({"appid": "wx0000000000000000"}, "appid 'wx0000000000000000' is not this merchant's"),
    ],
)
def test_another_merchants_transaction_is_refused(
    provider: WechatPayV3Provider, platform_key: RSAPrivateKey, changes: dict[str, object], reason: str
) -> None:
    body = transaction_notification(API_V3_KEY, "EV-1", transaction(**changes), NOW)
    with pytest.raises(NotificationRefused) as refused:
        provider.parse_notification(signed(platform_key, body), body, NOW)
    assert refused.value.reason == reason


def test_a_signed_body_that_is_not_json_is_refused(
    provider: WechatPayV3Provider, platform_key: RSAPrivateKey
) -> None:
    body = b"<xml>not json</xml>"
    with pytest.raises(NotificationRefused, match="malformed JSON in the notification"):
        provider.parse_notification(signed(platform_key, body), body, NOW)


@pytest.mark.parametrize(
    "plaintext",
    [b"not json", json.dumps(transaction(amount={"total": 50.05})).encode()],
    ids=["not json", "amount not whole fen"],
)
def test_a_resource_that_is_not_a_transaction_is_refused(
    provider: WechatPayV3Provider, platform_key: RSAPrivateKey, plaintext: bytes
) -> None:
    resource = encrypt_resource(API_V3_KEY, plaintext, "transaction", "transaction")
    body = json.dumps({"id": "EV-1", "event_type": "TRANSACTION.SUCCESS", "resource": resource}).encode()
    with pytest.raises(NotificationRefused, match="malformed JSON in the resource"):
        provider.parse_notification(signed(platform_key, body), body, NOW)


def test_a_refund_notification_is_not_taken_for_a_payment(
    provider: WechatPayV3Provider, platform_key: RSAPrivateKey
) -> None:
    resource = encrypt_resource(API_V3_KEY, b"{}", "refund", "refund")
    body = json.dumps({"id": "EV-1", "event_type": "REFUND.SUCCESS", "resource": resource}).encode()
    with pytest.raises(NotificationRefused, match="not a transaction notification"):
        provider.parse_notification(signed(platform_key, body), body, NOW)


def test_an_unsigned_notification_is_refused_before_it_is_read(provider: WechatPayV3Provider) -> None:
    with pytest.raises(NotificationRefused, match="missing header Wechatpay-Timestamp"):
        provider.parse_notification({}, b"not even json", NOW)


@pytest.mark.parametrize(
    "h5_url",
    [
        "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx2016121516420242444321ca0631331346&package=1405458241",
        "http://127.0.0.1:8003/pay/wx2016121516420242444321ca0631331346",
    ],
    ids=["wechat", "sandbox"],
)
def test_the_prepay_id_is_read_from_either_h5_url(h5_url: str) -> None:
    assert prepay_id_of(h5_url) == "wx2016121516420242444321ca0631331346"


def test_the_client_is_a_payment_provider(provider: WechatPayV3Provider) -> None:
    port: PaymentProvider = provider  # mypy holds the class to the protocol here
    assert port.name == "wechatpay"


def test_an_idle_connection_is_let_go_before_the_sandboxs_server_closes_it(
    provider: WechatPayV3Provider,
) -> None:
    """Reusing a connection the server is closing that very moment fails the request (a
    donor's pledge answered 503 in a benchmark, after a five-second pause)."""
    server_closes_after_s = uvicorn.Config(app=None).timeout_keep_alive  # the sandbox's server
    pool = provider._http._transport._pool  # type: ignore[attr-defined]
    assert pool._keepalive_expiry == KEEPALIVE_EXPIRY_S < server_closes_after_s
    # and the pool stays bounded, as httpx's defaults would have it
    assert (pool._max_connections, pool._max_keepalive_connections) == (100, 20)
