"""Reconciliation: what the API does with pledges nobody settled, against a scripted provider.

The ledger database and the donor store are real (SQLite); the provider answers as scripted
and the publisher records what would go to Kafka, so each case is exact and instant.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.api.giving import GiftRequest, Giving
from services.api.open_projects import OpenProjects
from services.contracts import events as ev
from services.contracts.topics import Topics
from services.donors.adapters.store import DonorStore
from services.ledger.adapters.store import LedgerStore
from services.ledger.read import LedgerQueries
from services.ledger.service.processor import BatchProcessor
from services.payments.provider import (
    PaymentRequest,
    PaymentResult,
    PaymentSession,
    ProviderRefused,
    RefundResult,
    TradeState,
)
from services.platform.db import make_engine
from services.platform.settings import Settings
from tests.fixtures import factories as f
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.ops.test_verify_and_rebuild import feed


@dataclass
class ScriptedProvider:
    name: str = "wechatpay"
    answers: dict[str, PaymentResult | ProviderRefused] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)

    async def create_payment(self, req: PaymentRequest) -> PaymentSession:
        return PaymentSession(pay_url=f"https://pay.example/{req.out_trade_no}", prepay_id=req.out_trade_no)

    def parse_notification(self, headers: object, body: bytes, now: datetime) -> PaymentResult:
        raise NotImplementedError  # reconciliation never receives notifications

    async def query(self, out_trade_no: str) -> PaymentResult:
        answer = self.answers[out_trade_no]
        if isinstance(answer, ProviderRefused):
            raise answer
        return answer

    async def refund(self, *args: object) -> RefundResult:
        raise NotImplementedError

    async def close(self, out_trade_no: str) -> None:
        self.closed.append(out_trade_no)


class RecordingPublisher:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    async def publish(self, event: ev.Event) -> None:
        self.events.append(event)

    def close(self) -> None:
        pass


@dataclass
class World:
    giving: Giving
    provider: ScriptedProvider
    published: RecordingPublisher
    clock: list[float]


@pytest.fixture
def world(tmp_path: Path) -> World:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = LedgerStore(make_engine(url))
    store.migrate()
    feed(BatchProcessor(store, RecordingOutput(), Topics(""), "g"), f.opened_project("p1"))
    provider, published, clock = ScriptedProvider(), RecordingPublisher(), [1_800_000_000.0]
    settings = Settings(database_url=url, pledge_timeout_s=60, receipt_org_codes={"园区慈善总会": "SIP"})
    giving = Giving(
        settings,
        DonorStore(make_engine(url)),
        provider,  # type: ignore[arg-type]
        published,
        OpenProjects(LedgerQueries(make_engine(url, writer=False))),
        return_url=lambda donation_id: f"https://give.example/return/{donation_id}",
        clock=lambda: clock[0],
    )
    return World(giving, provider, published, clock)


def make_pledge(w: World) -> str:
    gift = GiftRequest("p1", 5000, "CNY", None, "anonymous", None, "加油")
    made = asyncio.run(w.giving.pledge(gift, "client", None))
    return made.pledge.out_trade_no


def reconcile_after_expiry(w: World) -> None:
    w.clock[0] += 61
    asyncio.run(w.giving.reconcile())


def failed_events(w: World) -> list[ev.Event]:
    return [e for e in w.published.events if isinstance(e, ev.DonationFailed)]


def test_an_unpaid_order_is_closed_and_fails_once_with_the_same_event(world: World) -> None:
    trade = make_pledge(world)
    world.provider.answers[trade] = PaymentResult(trade, None, TradeState.NOTPAY, 5000, "CNY", None)
    reconcile_after_expiry(world)
    assert world.provider.closed == [trade]
    [failed] = failed_events(world)
    assert "NOTPAY" in failed.reason
    # Its time is the pledge's deadline, so publishing it again would be the same event.
    assert failed.occurred_at == datetime.fromtimestamp(1_800_000_060, UTC)
    reconcile_after_expiry(world)
    assert len(failed_events(world)) == 1  # failed pledges are settled


def test_an_order_the_provider_never_had_fails_too(world: World) -> None:
    trade = make_pledge(world)
    world.provider.answers[trade] = ProviderRefused(404, "ORDER_NOT_EXIST", "订单不存在")
    reconcile_after_expiry(world)
    [failed] = failed_events(world)
    assert "no order at the provider" in failed.reason and world.provider.closed == []


def test_a_paid_order_whose_notification_was_lost_is_confirmed(world: World) -> None:
    trade = make_pledge(world)
    paid_at = datetime.fromtimestamp(1_800_000_030, UTC)
    world.provider.answers[trade] = PaymentResult(trade, "4200001", TradeState.SUCCESS, 5000, "CNY", paid_at)
    reconcile_after_expiry(world)
    [confirmed] = [e for e in world.published.events if isinstance(e, ev.DonationConfirmed)]
    assert (confirmed.provider_charge_id, confirmed.gross_fen, confirmed.occurred_at) == (
        "4200001",
        5000,
        paid_at,
    )
    assert (confirmed.receipt_no or "").endswith("-2027-0000001")  # the year of the payment, in China
    assert failed_events(world) == []


def test_a_provider_error_leaves_the_pledge_for_the_next_round(world: World) -> None:
    trade = make_pledge(world)
    world.provider.answers[trade] = ProviderRefused(500, "SYSTEM_ERROR", "系统错误")
    reconcile_after_expiry(world)  # logged, not raised: one bad pledge must not stop the others
    assert failed_events(world) == []
    world.provider.answers[trade] = PaymentResult(trade, None, TradeState.CLOSED, 5000, "CNY", None)
    reconcile_after_expiry(world)
    assert len(failed_events(world)) == 1
