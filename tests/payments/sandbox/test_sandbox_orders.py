from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.payments.provider import ProviderRefused, TradeState
from services.payments.sandbox.notifier import RetrySchedule
from services.payments.sandbox.orders import NewOrder, OrderBook

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
TERMS = NewOrder(
    out_trade_no="T-100001",
    appid="wxd678efh567hg6787",
    mchid="1900000109",
    description="苏州助学 · school meals",
    total_fen=5005,
    currency="CNY",
    notify_url="http://127.0.0.1:8000/api/payments/wechatpay/notify",
    time_expire=NOW + timedelta(minutes=15),
)


def code_of(call: object) -> str:
    assert callable(call)
    with pytest.raises(ProviderRefused) as refused:
        call()
    return refused.value.code


def test_the_same_order_again_gets_the_same_prepay_session() -> None:
    book = OrderBook()
    order = book.create(TERMS, NOW)
    assert order.prepay_id.startswith("wx20260501120000")
    assert book.create(TERMS, NOW + timedelta(seconds=5)) is order
    assert code_of(lambda: book.create(replace(TERMS, total_fen=5006), NOW)) == "INVALID_REQUEST"


def test_a_paid_order_is_paid_once() -> None:
    book = OrderBook()
    order = book.create(TERMS, NOW)
    assert book.pay(order, NOW)
    transaction_id = order.transaction_id
    assert not book.pay(order, NOW)
    assert order.transaction_id == transaction_id and transaction_id is not None and len(transaction_id) == 28
    assert order.transaction()["trade_state"] == "SUCCESS"
    assert code_of(lambda: book.create(TERMS, NOW)) == "ORDERPAID"
    assert code_of(lambda: book.close(order)) == "ORDERPAID"


def test_an_unpaid_order_reads_without_a_transaction_id() -> None:
    view = OrderBook().create(TERMS, NOW).transaction()
    assert view["trade_state"] == "NOTPAY" and "transaction_id" not in view
    assert view["amount"] == {"total": 5005, "currency": "CNY"}


def test_an_expired_order_cannot_be_paid() -> None:
    book = OrderBook()
    order = book.create(TERMS, NOW)
    assert code_of(lambda: book.pay(order, TERMS.time_expire + timedelta(seconds=1))) == "ORDER_EXPIRED"
    assert order.trade_state is TradeState.NOTPAY


def test_a_failed_or_closed_order_cannot_be_paid() -> None:
    book = OrderBook()
    failed = book.create(TERMS, NOW)
    book.fail(failed, NOW)
    assert failed.trade_state is TradeState.PAYERROR
    assert code_of(lambda: book.pay(failed, NOW)) == "INVALID_REQUEST"
    book.close(failed)
    assert failed.transaction()["trade_state"] == "CLOSED"
    assert code_of(lambda: book.pay(failed, NOW)) == "ORDERCLOSED"
    assert code_of(lambda: book.create(TERMS, NOW)) == "ORDERCLOSED"


def test_refunds_add_up_to_the_total_at_most() -> None:
    book = OrderBook()
    order = book.create(TERMS, NOW)
    assert code_of(lambda: book.refund(order, "R-1", 100, 5005, "", NOW)) == "INVALID_REQUEST"  # unpaid
    book.pay(order, NOW)
    first = book.refund(order, "R-1", 5000, 5005, "捐赠人申请", NOW)
    assert order.trade_state is TradeState.REFUND
    assert book.refund(order, "R-1", 5000, 5005, "捐赠人申请", NOW) is first
    assert code_of(lambda: book.refund(order, "R-1", 4000, 5005, "", NOW)) == "INVALID_REQUEST"
    assert code_of(lambda: book.refund(order, "R-2", 6, 5005, "", NOW)) == "INVALID_REQUEST"
    assert code_of(lambda: book.refund(order, "R-2", 5, 5006, "", NOW)) == "INVALID_REQUEST"
    book.refund(order, "R-2", 5, 5005, "", NOW)
    assert order.refunded_fen == 5005


def test_the_retry_schedule_doubles_up_to_its_cap() -> None:
    schedule = RetrySchedule(first_delay_s=0.2, factor=2, max_delay_s=10)
    assert [schedule.delay_after(n) for n in range(1, 9)] == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10, 10]
