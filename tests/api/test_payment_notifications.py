"""Forged, stale, replayed, wrongly encrypted, tampered and mismatched notifications at the API.

Each is refused with its reason and confirms nothing; the genuine one confirms the gift once.
Notifications are made here with the sandbox's own platform key and the merchant's APIv3 key,
so the test controls every byte.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from services.ledger.adapters import tables as t
from services.payments.sandbox.platform_keys import SandboxKeyRing
from services.payments.sandbox.simulator import transaction_notification
from services.payments.wechatpay_keys import load_api_v3_key
from services.payments.wechatpay_v3 import CHINA_TIME, rfc3339
from tests.api.test_giving import open_project, pledge, pledge_row, trade_no
from tests.fixtures.giving import GivingSystem
from tests.fixtures.ledger import eventually

pytestmark = pytest.mark.integration
NOTIFY = "/api/payments/wechatpay/notify"


def paid_transaction(giving: GivingSystem, made: dict[str, Any], total_fen: int = 5000) -> dict[str, object]:
    return {
        "appid": giving.settings.wechatpay_appid,
        "mchid": giving.settings.wechatpay_mch_id,
        "out_trade_no": trade_no(made),
        "transaction_id": f"42000{uuid.uuid4().int % 10**20:020d}",
        "trade_type": "MWEB",
        "trade_state": "SUCCESS",
        "amount": {"total": total_fen, "currency": "CNY", "payer_total": total_fen, "payer_currency": "CNY"},
        "success_time": rfc3339(datetime.now(CHINA_TIME)),
    }


def notification(
    giving: GivingSystem,
    transaction: dict[str, object],
    *,
    key: bytes | None = None,
    signed_at: datetime | None = None,
) -> tuple[bytes, dict[str, str]]:
    now = signed_at or datetime.now(CHINA_TIME)
    api_v3_key = key or load_api_v3_key(giving.settings)
    body = transaction_notification(api_v3_key, str(uuid.uuid4()), transaction, now)
    headers = SandboxKeyRing.from_settings(giving.settings, lambda: now).sign_headers(body)
    return body, {"Content-Type": "application/json", **headers}


def confirmed_count(giving: GivingSystem) -> int:
    with giving.ledger.app.store.engine.connect() as conn:
        query = select(func.count()).select_from(t.journal).where(t.journal.c.kind == "DonationConfirmed")
        return int(conn.scalar(query) or 0)


def test_only_a_genuine_matching_notification_confirms_a_gift(giving: GivingSystem) -> None:
    open_project(giving.api, "meals")
    made = pledge(giving.api)
    genuine = paid_transaction(giving, made)

    def post(body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        answer = giving.api.post(NOTIFY, content=body, headers=headers)
        return answer.status_code, answer.text

    body, headers = notification(giving, genuine)
    tampered = body.replace(b'"id": "', b'"id": "x', 1) if b'"id": "' in body else body[:-2] + b" }"
    assert post(tampered, headers)[0] == 401  # the signature covers the raw bytes
    stale = notification(giving, genuine, signed_at=datetime.now(CHINA_TIME) - timedelta(seconds=301))
    code, text = post(*stale)
    assert code == 401 and "stale Wechatpay-Timestamp" in text
    assert post(*notification(giving, genuine, key=os.urandom(16).hex().encode()))[0] == 401  # wrong key
    forged = dict(headers, **{"Wechatpay-Signature": headers["Wechatpay-Signature"][::-1]})
    assert post(body, forged)[0] == 401
    mismatched = notification(giving, paid_transaction(giving, made, total_fen=4999))
    assert post(*mismatched)[0] == 400  # not pledged
    other_order = notification(giving, dict(paid_transaction(giving, made), out_trade_no=uuid.uuid4().hex))
    assert post(*other_order)[0] == 400
    # A notification that pays nothing uses its nonce up too: its replay is refused as one.
    for refused in (mismatched, other_order):
        code, text = post(*refused)
        assert code == 401 and "nonce" in text
    assert pledge_row(giving, made["donation_id"]).status == "pending"  # nothing of it was taken

    assert post(body, headers)[0] == 204
    replay = post(body, headers)
    assert replay[0] == 401 and "nonce" in replay[1]  # the very same delivery again
    assert post(*notification(giving, genuine))[0] == 204  # a fresh copy of it is a no-op that answers 2xx
    eventually(
        lambda: giving.api.get("/api/projects/meals/totals").json()["gross_fen"] == 5000, what="booked"
    )
    assert confirmed_count(giving) == 1
    # Marked confirmed after the 2xx, with the others the broker acknowledged meanwhile.
    eventually(lambda: pledge_row(giving, made["donation_id"]).status == "confirmed", what="marked")
    assert pledge_row(giving, made["donation_id"]).provider_charge_id == genuine["transaction_id"]
    # The same provider charge cannot confirm a second donation.
    second = pledge(giving.api)
    reused = dict(paid_transaction(giving, second), transaction_id=genuine["transaction_id"])
    assert post(*notification(giving, reused))[0] == 409
    metrics = giving.api.get("/metrics").text
    for outcome in ("confirmed", "mismatch", "unknown_order", "charge_reused", "replayed"):
        assert f'api_payment_notifications_total{{outcome="{outcome}"}}' in metrics
