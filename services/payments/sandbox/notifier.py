"""Notification deliveries: POST a notification to the merchant's notify_url until it answers 2xx.

Each attempt is signed afresh (a new timestamp and nonce, the platform key
current at that moment): the merchant remembers nonces, so repeating a signed
request that reached it but failed there would be refused as a replay, and a
retry hours later would be stale. A refused connection, a timeout and any
non-2xx answer are all retried, with capped exponential back-off, up to
`max_attempts`; WeChat Pay's own schedule stretches over a day, the defaults
here over about a minute and a half, so tests see retries quickly.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum

import httpx

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrySchedule:
    first_delay_s: float = 0.2
    factor: float = 2.0
    max_delay_s: float = 10.0
    max_attempts: int = 15
    attempt_timeout_s: float = 5.0

    def delay_after(self, attempt: int) -> float:
        """How long to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.first_delay_s * self.factor ** (attempt - 1), self.max_delay_s))


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    GAVE_UP = "gave_up"


@dataclass
class Delivery:
    delivery_id: int
    out_trade_no: str
    notification_id: str
    url: str
    attempts: int = 0
    last_status: int | None = None  # the receiver's HTTP status; None when it could not be reached
    last_error: str | None = None
    state: DeliveryState = DeliveryState.PENDING

    def view(self) -> dict[str, object]:
        return asdict(self)


class Notifier:
    def __init__(self, schedule: RetrySchedule, sign: Callable[[bytes], Mapping[str, str]]) -> None:
        self.schedule = schedule
        self._sign = sign
        self._http = httpx.AsyncClient(timeout=schedule.attempt_timeout_s, follow_redirects=False)
        self._deliveries: list[Delivery] = []
        self._ids = itertools.count(1)
        # Held so that running deliveries are not garbage-collected, and cancelled on close.
        self._tasks: set[asyncio.Task[None]] = set()

    def deliver(self, out_trade_no: str, notification_id: str, url: str, body: bytes) -> Delivery:
        """Start delivering `body` in the background (call from the event loop); the delivery's record."""
        delivery = Delivery(next(self._ids), out_trade_no, notification_id, url)
        self._deliveries.append(delivery)
        task = asyncio.get_running_loop().create_task(self._run(delivery, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return delivery

    def deliveries(self, out_trade_no: str | None = None) -> list[Delivery]:
        return [d for d in self._deliveries if out_trade_no is None or d.out_trade_no == out_trade_no]

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._http.aclose()

    async def _run(self, delivery: Delivery, body: bytes) -> None:
        while True:
            delivery.attempts += 1
            if await self._attempt(delivery, body):
                delivery.state = DeliveryState.DELIVERED
                return
            if delivery.attempts >= self.schedule.max_attempts:
                delivery.state = DeliveryState.GAVE_UP
                log.warning("notification %s to %s: gave up", delivery.notification_id, delivery.url)
                return
            await asyncio.sleep(self.schedule.delay_after(delivery.attempts))

    async def _attempt(self, delivery: Delivery, body: bytes) -> bool:
        headers = {"Content-Type": "application/json", **self._sign(body)}
        try:
            response = await self._http.post(delivery.url, content=body, headers=headers)
        except httpx.HTTPError as error:
            delivery.last_status, delivery.last_error = None, f"{type(error).__name__}: {error}"
            log.info("notification %s attempt %d: %s", delivery.notification_id, delivery.attempts, error)
            return False
        delivery.last_status = response.status_code
        delivery.last_error = None if response.is_success else response.text[:200]
        return response.is_success
