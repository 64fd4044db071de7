"""Giving: a donor's pledge, the provider's notification, and the pledges nobody paid.

The use cases behind the donate pages and the payment notifications; routes
turn their errors into HTTP answers. The order of steps is what makes a gift
counted exactly once:

1. pledge: checks (project open, amount, limits), the pledge and the donor's
   details stored in one transaction, DonationPledged published, then the
   provider asked for a pay page;
2. notification: verified (signature, time, nonce) and decrypted by the
   provider adapter, matched to the pledge to the fen, the pledge marked paid
   with its receipt number (one transaction), DonationConfirmed published and
   acknowledged by the broker, and only then 2xx to the provider. If the
   broker is away the provider gets a 503 and retries; the pledge stays paid
   with its number, and the retry publishes the same event (same derived id);
3. reconciliation: pledges past their expiry are asked about at the provider
   (a lost notification is a paid order: it is confirmed; an unpaid order is
   closed and becomes DonationFailed), and paid pledges whose confirmation was
   never acknowledged are published again.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar
from zoneinfo import ZoneInfo

from prometheus_client import Counter

from services.api.models import DonationIn
from services.api.open_projects import OpenProjects
from services.api.payment_writer import PaymentWriter
from services.api.producer import EventPublisher
from services.contracts import events as ev
from services.contracts.sealed import seal
from services.donors.adapters.store import (
    ChargeAlreadyCounted,
    DonorDetails,
    DonorStore,
    NonceReplayed,
    Payment,
    request_hash,
)
from services.donors.domain.amounts import AmountRefused, AmountRules
from services.donors.domain.pledges import (
    PaymentMismatch,
    Pledge,
    PledgeStatus,
    check_payment,
    display_name_for_events,
    out_trade_no_for,
)
from services.donors.domain.receipts import new_verification_code, org_code
from services.ledger.read import ProjectStatus
from services.payments.provider import (
    NotificationRefused,
    PaymentProvider,
    PaymentRequest,
    PaymentResult,
    PaymentSession,
    ProviderRefused,
    ProviderUnavailable,
    RefundResult,
    TradeState,
)
from services.platform.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")
CHINA = ZoneInfo("Asia/Shanghai")  # receipt years are the organisation's calendar years
NONCES_KEPT_MS = 15 * 60 * 1000  # beyond any provider's replay window (WeChat Pay: 600 s)

LIMITED = Counter("api_donation_limits_total", "Donation requests refused by a limit", ["limit"])
NOTIFICATIONS = Counter("api_payment_notifications_total", "Payment notifications by outcome", ["outcome"])
RECONCILED = Counter("api_pledges_reconciled_total", "Pledges settled by reconciliation", ["outcome"])


class GivingRefused(Exception):
    """A request a donor must change: `status` is the HTTP status, the message says why."""

    def __init__(self, status: int, message: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class GiftRequest:
    project_id: str
    amount_fen: int
    currency: str
    venue_id: str | None
    anonymity: str
    display_name: str | None
    message: str | None

    def digest(self) -> str:
        return request_hash(self.__dict__)

    @classmethod
    def of(cls, body: DonationIn) -> GiftRequest:
        return cls(
            project_id=body.project_id,
            amount_fen=body.amount_fen,
            currency=body.currency,
            venue_id=body.venue_id,
            anonymity=body.anonymity,
            # A name goes no further than the choice to show it.
            display_name=body.display_name if body.anonymity == "masked" else None,
            message=body.message,
        )


@dataclass(frozen=True)
class PledgeMade:
    pledge: Pledge
    pay_url: str


def sealed_message(pledge: Pledge, details: DonorDetails | None) -> str | None:
    """The donor's message as it may travel on the topics: sealed with their own key."""
    if details is None or not details.message or details.data_key is None:
        return None  # no message, or erased: nothing of it goes out any more
    return seal(details.data_key, pledge.donor_ref, "message", details.message)


class NoProvider:
    """An API started without a payment provider: it takes no gifts and says so (503)."""

    name = "none"
    _WHY = "no payment provider is configured"

    async def create_payment(self, req: PaymentRequest) -> PaymentSession:
        raise ProviderUnavailable(self._WHY)

    def parse_notification(self, headers: Mapping[str, str], body: bytes, now: datetime) -> PaymentResult:
        raise NotificationRefused(self._WHY)

    async def query(self, out_trade_no: str) -> PaymentResult:
        raise ProviderUnavailable(self._WHY)

    async def refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        currency: str,
        reason: str,
    ) -> RefundResult:
        raise ProviderUnavailable(self._WHY)

    async def close(self, out_trade_no: str) -> None:
        raise ProviderUnavailable(self._WHY)


class Giving:
    def __init__(
        self,
        settings: Settings,
        store: DonorStore,
        provider: PaymentProvider,
        publisher: EventPublisher,
        open_projects: OpenProjects,
        return_url: Callable[[str], str],
        clock: Callable[[], float] = time.time,
    ) -> None:
        """return_url(donation_id): where the pay page sends the donor back."""
        self.settings = settings
        self.store = store
        self.provider = provider
        self.publisher = publisher
        self.open_projects = open_projects
        self.clock = clock
        self.return_url = return_url
        self.amounts = AmountRules(settings.donation_ceiling_fen)
        self.payments = PaymentWriter(store)
        self.notify_url = settings.payment_notify_url or (
            f"http://127.0.0.1:{settings.api_port}/api/payments/wechatpay/notify"
        )

    def amount_typed(self, text: str) -> int:
        """An amount a donor typed in yuan, in fen; AmountRefused says why not."""
        return self.counted(self.amounts.parse_yuan, text)

    @staticmethod
    def counted(check: Callable[[T], int], value: T) -> int:
        """Run an amount check; a gift over the ceiling is counted as a limit like the others."""
        try:
            return check(value)
        except AmountRefused as exc:
            if exc.over_ceiling:
                LIMITED.labels("amount_ceiling").inc()
            raise

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --- 1. pledge ---------------------------------------------------------------

    async def pledge(self, gift: GiftRequest, client_hash: str, idempotency_key: str | None) -> PledgeMade:
        project = await self.open_projects.project(gift.project_id)
        if project is None:
            raise GivingRefused(404, f"没有这个项目 · unknown project {gift.project_id!r}")
        if project.status != ProjectStatus.FUNDRAISING:
            raise GivingRefused(
                409,
                f"该项目目前不接受捐赠 · project {gift.project_id!r} is {project.status}, not fundraising",
            )
        if gift.currency != project.currency:
            raise GivingRefused(
                409, f"currency {gift.currency} does not match the project's {project.currency}"
            )
        self.counted(self.amounts.check_fen, gift.amount_fen)
        now_ms = self._now_ms()
        if idempotency_key is None:
            await self._check_limits(gift.project_id, client_hash, now_ms)
        donation_id = str(uuid.uuid4())
        pledge = Pledge(
            donation_id=donation_id,
            out_trade_no=out_trade_no_for(donation_id),
            project_id=gift.project_id,
            venue_id=gift.venue_id,
            channel="qr" if gift.venue_id else "web",
            amount_fen=gift.amount_fen,
            currency=gift.currency,
            anonymity=gift.anonymity,
            donor_ref=str(uuid.uuid4()),
            status=PledgeStatus.PENDING,
            created_at_ms=now_ms,
            expires_at_ms=now_ms + int(self.settings.pledge_timeout_s * 1000),
            provider=self.provider.name,
            verification_code=new_verification_code(),
        )
        details = DonorDetails.new(gift.display_name, gift.message)
        idempotency = (idempotency_key, gift.digest()) if idempotency_key else None
        if idempotency is not None:
            # A retry with the same key is not a new donation, so it is not counted against the limits.
            known = await asyncio.to_thread(self.store.pledge_for_key, *idempotency, now_ms)
            if known is None:
                await self._check_limits(gift.project_id, client_hash, now_ms)
        stored, created = await asyncio.to_thread(
            self.store.create_pledge,
            pledge,
            details,
            client_hash=client_hash,
            idempotency=idempotency,
            now_ms=now_ms,
        )
        if created or stored.status == PledgeStatus.PENDING:
            sent = details if created else await asyncio.to_thread(self.store.details, stored.donor_ref)
            await self.publisher.publish(self._pledged_event(stored, gift, sent))
        pay_url = await self._pay_url(stored, str(project.plan.get("name", project.project_id)))
        return PledgeMade(stored, pay_url)

    async def _check_limits(self, project_id: str, client_hash: str, now_ms: int) -> None:
        minute_ago = now_ms - 60_000
        by_client = await asyncio.to_thread(
            self.store.count_since, client_hash=client_hash, since_ms=minute_ago
        )
        if by_client >= self.settings.donations_per_client_per_minute:
            LIMITED.labels("per_client").inc()
            raise GivingRefused(
                429, "捐赠太频繁，请稍后再试 · too many donations from you; try again in a minute", 60
            )
        by_project = await asyncio.to_thread(
            self.store.count_since, project_id=project_id, since_ms=minute_ago
        )
        if by_project >= self.settings.donations_per_project_per_minute:
            LIMITED.labels("per_project").inc()
            raise GivingRefused(
                429, "该项目此刻捐赠人数过多，请稍后再试 · this project is very busy; try again soon", 10
            )

    def _pledged_event(
        self, pledge: Pledge, gift: GiftRequest, details: DonorDetails | None
    ) -> ev.DonationPledged:
        return ev.DonationPledged(
            event_id=ev.derived_id("pledged", pledge.donation_id),
            occurred_at=datetime.fromtimestamp(pledge.created_at_ms / 1000, UTC),
            actor="donor",
            project_id=pledge.project_id,
            donation_id=pledge.donation_id,
            amount_fen=pledge.amount_fen,
            currency=pledge.currency,
            channel=pledge.channel,
            venue_id=pledge.venue_id,
            anonymity=pledge.anonymity,
            display_name=display_name_for_events(pledge.anonymity, gift.display_name),
            message=sealed_message(pledge, details),
            donor_ref=pledge.donor_ref,
        )

    async def _pay_url(self, pledge: Pledge, project_name: str) -> str:
        session = await self.provider.create_payment(
            PaymentRequest(
                out_trade_no=pledge.out_trade_no,
                amount_fen=pledge.amount_fen,
                currency=pledge.currency,
                description=f"捐赠 · {project_name}"[:127],
                notify_url=self.notify_url,
                return_url=self.return_url(pledge.donation_id),
                expires_at=datetime.fromtimestamp(pledge.expires_at_ms / 1000, UTC),
            )
        )
        return session.pay_url

    # --- 2. notification -----------------------------------------------------------

    async def notified(self, headers: Mapping[str, str], body: bytes) -> None:
        """A payment notification; raises NotificationRefused (4xx) or BrokerUnavailable (503)."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        await self._settle(*await asyncio.to_thread(self._read_notification, headers, body, now))

    def _read_notification(
        self, headers: Mapping[str, str], body: bytes, now: datetime
    ) -> tuple[PaymentResult, Pledge | None]:
        """Verify and decrypt a notification and find the pledge it is about: one trip to
        a worker thread, not two (each trip costs the loop a wake-up and a context)."""
        result = self.provider.parse_notification(headers, body, now)
        return result, self.store.pledge_by_trade_no(result.out_trade_no)

    async def settle(self, result: PaymentResult) -> Pledge | None:
        """What the provider says about an order, from a query (see `_settle`)."""
        return await self._settle(
            result, await asyncio.to_thread(self.store.pledge_by_trade_no, result.out_trade_no)
        )

    async def _settle(self, result: PaymentResult, pledge: Pledge | None) -> Pledge | None:
        """What the provider says about an order, from a notification or a query.

        A notification's nonce is recorded with the pledge it pays (one transaction),
        or on its own when it pays nothing; a replay raises NotificationRefused."""
        if pledge is None:
            await self._spend_nonce(result)
            NOTIFICATIONS.labels("unknown_order").inc()
            raise GivingRefused(400, f"no pledge with out_trade_no {result.out_trade_no!r}")
        if result.trade_state != TradeState.SUCCESS:
            await self._spend_nonce(result)
            NOTIFICATIONS.labels("not_paid").inc()
            return pledge
        try:
            check_payment(pledge, result.out_trade_no, result.amount_fen, result.currency)
        except PaymentMismatch as exc:
            await self._spend_nonce(result)
            NOTIFICATIONS.labels("mismatch").inc()
            log.error("payment does not match its pledge %s: %s", pledge.donation_id, exc)
            raise GivingRefused(400, f"payment does not match the pledge: {exc}") from exc
        assert result.transaction_id is not None and result.success_time is not None
        project = await self.open_projects.project(pledge.project_id)
        organisation = str(project.plan.get("organisation", "")) if project is not None else ""
        payment = Payment(
            pledge.donation_id,
            result.transaction_id,
            int(result.success_time.timestamp() * 1000),
            0,  # the sandbox and WeChat Pay's charity merchants charge no fee per gift
            org_code(organisation, self.settings.receipt_org_codes),
            result.success_time.astimezone(CHINA).year,
            result.nonce,
        )
        try:
            paid, details = await self.payments.paid(payment)
        except NonceReplayed as exc:
            NOTIFICATIONS.labels("replayed").inc()
            raise NotificationRefused("replayed nonce") from exc
        except ChargeAlreadyCounted as exc:  # its nonce was recorded with the refusal
            NOTIFICATIONS.labels("charge_reused").inc()
            raise GivingRefused(409, str(exc)) from exc
        if paid.status == PledgeStatus.CONFIRMED:
            NOTIFICATIONS.labels("repeated").inc()
            return paid
        await self.publisher.publish(self._confirmed_event(paid, details))
        self.payments.confirmed(paid.donation_id)
        NOTIFICATIONS.labels("confirmed").inc()
        return paid

    async def _spend_nonce(self, result: PaymentResult) -> None:
        """Record the nonce of a notification that pays nothing (a rare path: its own write)."""
        if result.nonce is not None and not await asyncio.to_thread(self.store.remember, result.nonce):
            NOTIFICATIONS.labels("replayed").inc()
            raise NotificationRefused("replayed nonce")

    @staticmethod
    def _confirmed_event(pledge: Pledge, details: DonorDetails | None) -> ev.DonationConfirmed:
        assert pledge.paid_at_ms is not None and pledge.provider_charge_id is not None
        name = details.display_name if details else None
        return ev.DonationConfirmed(
            # One donation is one event, however often the provider calls back.
            event_id=ev.derived_id("confirmed", pledge.donation_id),
            occurred_at=datetime.fromtimestamp(pledge.paid_at_ms / 1000, UTC),
            actor=pledge.provider,
            project_id=pledge.project_id,
            donation_id=pledge.donation_id,
            provider=pledge.provider,
            provider_charge_id=pledge.provider_charge_id,
            gross_fen=pledge.amount_fen,
            fee_fen=pledge.fee_fen or 0,
            currency=pledge.currency,
            channel=pledge.channel,
            venue_id=pledge.venue_id,
            anonymity=pledge.anonymity,
            display_name=display_name_for_events(pledge.anonymity, name),
            message=sealed_message(pledge, details),
            donor_ref=pledge.donor_ref,
            receipt_no=pledge.receipt_no,
        )

    # --- 3. reconciliation -----------------------------------------------------------

    async def reconcile(self, limit: int = 100) -> int:
        """Settle the pledges that are due; returns how many were looked at."""
        now_ms = self._now_ms()
        # Housekeeping only: a nonce older than its window no longer counts (the store takes
        # its row over), so rows are kept a while past any provider's window, then dropped.
        await asyncio.to_thread(self.store.forget_nonces, now_ms - NONCES_KEPT_MS)
        due = await asyncio.to_thread(self.store.due, now_ms, paid_grace_ms=30_000, limit=limit)
        for pledge in due:
            try:
                await self._reconcile_one(pledge)
            except Exception:  # one bad pledge must not stop the others; it is due again next round
                log.exception("could not reconcile pledge %s", pledge.donation_id)
        return len(due)

    async def _reconcile_one(self, pledge: Pledge) -> None:
        if pledge.status == PledgeStatus.PAID:
            details = await asyncio.to_thread(self.store.details, pledge.donor_ref)
            await self.publisher.publish(self._confirmed_event(pledge, details))
            self.payments.confirmed(pledge.donation_id)
            RECONCILED.labels("republished").inc()
            return
        try:
            result = await self.provider.query(pledge.out_trade_no)
        except ProviderRefused as exc:
            if exc.status != 404:
                raise
            # The provider never had the order: the pledge failed before its pay page was made.
            state = "no order at the provider"
        else:
            if result.trade_state == TradeState.SUCCESS:
                await self.settle(result)  # the notification was lost; the money is there
                RECONCILED.labels("paid").inc()
                return
            if result.trade_state in (TradeState.NOTPAY, TradeState.USERPAYING):
                try:
                    await self.provider.close(pledge.out_trade_no)
                except ProviderRefused:
                    # Paid in the very moment: asking again decides (next round).
                    return
            state = str(result.trade_state)
        reason = f"not paid within {timedelta(seconds=self.settings.pledge_timeout_s)} ({state})"
        await self.publisher.publish(
            ev.DonationFailed(
                event_id=ev.derived_id("failed", pledge.donation_id),
                # The pledge's deadline, not now: published again after a failure, the event
                # must be the same one, or the ledger would see a conflicting duplicate.
                occurred_at=datetime.fromtimestamp(pledge.expires_at_ms / 1000, UTC),
                actor=pledge.provider,
                project_id=pledge.project_id,
                donation_id=pledge.donation_id,
                reason=reason,
            )
        )
        await asyncio.to_thread(self.store.mark_failed, pledge.donation_id, reason)
        RECONCILED.labels("failed").inc()
