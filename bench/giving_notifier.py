"""The benchmark as WeChat Pay's notifier: payment notifications signed beforehand and sent
to the API by this process, so that the provider's own work is not on this machine.

In production the notifications come from the provider's servers: the RSA signature over
each, its encryption and its HTTP delivery cost Tencent's CPU, not the charity's. The
sandbox does all of that on this machine's two cores (about as much CPU per notification
as the API spends taking it, docs/benchmarks.md), so at 200 a second it would measure the
stand-in as much as the product. Here every notification is made exactly as the sandbox
makes it (its order book pays the order, its `transaction_notification` builds the body,
its platform key ring signs it), before the run, and the run only sends them, over raw
keep-alive HTTP/1.1. The signatures' timestamps are those of the signing, well inside the
API's ±300 s window for a run of tens of seconds.

The API cannot tell these from the sandbox's: it verifies the signature with the platform
key the sandbox published, decrypts, matches the pledge, and answers 204 only once the
broker has the gift.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench.keepalive import KeepAlive, Pool
from services.donors.domain.pledges import out_trade_no_for
from services.payments.sandbox.orders import NewOrder, OrderBook
from services.payments.sandbox.platform_keys import SandboxKeyRing
from services.payments.sandbox.simulator import transaction_notification
from services.payments.wechatpay_keys import load_api_v3_key
from services.platform.settings import Settings

NOTIFY_PATH = "/api/payments/wechatpay/notify"


@dataclass(frozen=True)
class SignedNotification:
    donation_id: str
    body: bytes
    headers: str  # header lines, each ending in CRLF


@dataclass(frozen=True)
class Sent:
    donation_id: str
    due: float  # wall clock: when the schedule wanted it sent (or when it was sent, closed loop)
    sent: float
    answered: float  # the API's 204: the gift's DonationConfirmed is on the broker
    status: int


def signed_notifications(keys: Settings, pledged: Mapping[str, int]) -> list[SignedNotification]:
    """One TRANSACTION.SUCCESS notification for each pledge (donation id → amount in fen),
    paid now, as the sandbox would send it."""
    now = datetime.now(UTC)
    ring = SandboxKeyRing.from_settings(keys, clock=lambda: datetime.now(UTC))
    api_v3_key = load_api_v3_key(keys)
    book = OrderBook()
    made = []
    for donation_id, amount_fen in pledged.items():
        terms = NewOrder(
            out_trade_no=out_trade_no_for(donation_id),
            appid=keys.wechatpay_appid,
            mchid=keys.wechatpay_mch_id,
            description="bench",
            total_fen=amount_fen,
            currency="CNY",
            notify_url=NOTIFY_PATH,
            time_expire=now + timedelta(hours=1),
        )
        order = book.create(terms, now)
        book.pay(order, now)
        body = transaction_notification(api_v3_key, str(uuid.uuid4()), order.transaction(), now)
        headers = {"Content-Type": "application/json", **ring.sign_headers(body)}
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        made.append(SignedNotification(donation_id, body, lines))
    return made


async def notify(
    api_urls: Sequence[str],
    notifications: list[SignedNotification],
    connections: int,
    rate: float | None = None,
    keep_going: Callable[[int], bool] = lambda _: True,
) -> list[Sent]:
    """Send the notifications: the i-th due at start + i/rate (open loop), or, without a
    rate, back to back on each connection (closed loop: ``connections`` always waiting).
    The connections go to the API processes in turn. Stops early once
    keep_going(how many were handed out) is False."""
    queue: asyncio.Queue[tuple[SignedNotification, float] | None] = asyncio.Queue()
    sent: list[Sent] = []

    async def notifier(connection: KeepAlive) -> None:
        while (job := await queue.get()) is not None:
            notification, due = job
            began = time.time()
            status, answer = await connection.request(
                "POST", NOTIFY_PATH, notification.body, notification.headers
            )
            if status // 100 != 2:
                raise RuntimeError(f"notification answered {status}: {answer[:300]!r}")
            sent.append(Sent(notification.donation_id, due or began, began, time.time(), status))

    pool = Pool(api_urls, connections)
    workers = [asyncio.create_task(notifier(c)) for c in pool.connections]
    try:
        started = time.time()
        for index, notification in enumerate(notifications):
            due = started + index / rate if rate else 0.0
            if rate and (delay := due - time.time()) > 0:
                await asyncio.sleep(delay)
            if not keep_going(index):
                break
            queue.put_nowait((notification, due))
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
    finally:
        pool.close()
    return sent
