"""The giving benchmark's own notifications are ones the API's WeChat Pay adapter accepts:
signed with the sandbox's platform key, the transaction encrypted under the APIv3 key,
paying each pledge's order its exact amount."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.giving_notifier import signed_notifications
from services.donors.domain.pledges import out_trade_no_for
from services.payments.provider import InMemoryNonceStore, NotificationRefused, TradeState
from services.payments.wechatpay_client import WechatPayV3Provider
from services.payments.wechatpay_keys import ensure_local_keys
from services.platform.settings import Settings


@pytest.fixture
def keys(tmp_path: Path) -> Settings:
    settings = Settings(
        wechatpay_api_v3_key_path=str(tmp_path / "apiv3.key"),
        wechatpay_merchant_key_path=str(tmp_path / "merchant.pem"),
        wechatpay_platform_keys_dir=str(tmp_path / "platform"),
    )
    ensure_local_keys(settings)
    return settings


def header_fields(lines: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in lines.split("\r\n") if line)


def test_each_pledge_gets_a_notification_the_api_accepts(keys: Settings) -> None:
    pledged = {"gift-one": 5005, "gift-two": 100}
    provider = WechatPayV3Provider.from_settings(keys, nonces=InMemoryNonceStore())
    made = signed_notifications(keys, pledged)
    assert [n.donation_id for n in made] == ["gift-one", "gift-two"]
    for notification in made:
        result = provider.parse_notification(
            header_fields(notification.headers), notification.body, datetime.now(UTC)
        )
        assert result.trade_state is TradeState.SUCCESS
        assert result.out_trade_no == out_trade_no_for(notification.donation_id)
        assert (result.amount_fen, result.currency) == (pledged[notification.donation_id], "CNY")


def test_a_notification_sent_twice_is_a_replay_to_the_api(keys: Settings) -> None:
    provider = WechatPayV3Provider.from_settings(keys, nonces=InMemoryNonceStore())
    (notification,) = signed_notifications(keys, {"gift-one": 5005})
    headers = header_fields(notification.headers)
    provider.parse_notification(headers, notification.body, datetime.now(UTC))
    with pytest.raises(NotificationRefused, match="replayed nonce"):
        provider.parse_notification(headers, notification.body, datetime.now(UTC))
