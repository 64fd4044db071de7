"""The one interface the API uses to take money: `PaymentProvider`, its value types and errors.

Amounts are integer fen with a currency code, never floats. Times are aware
datetimes. A provider is reached over the network for everything except
`parse_notification`, which is CPU only (plus the nonce store), so the API
can answer a notification without another round trip.

A notification is *refused* (`NotificationRefused`, answered with HTTP 4xx)
when it cannot be trusted or read; the provider then retries it, which is
what an honest notification that failed on our side (a database outage)
needs as well. The nonce store remembers the notifications already taken
within the window in which their timestamp is acceptable, so a recorded
notification cannot be replayed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True)
class PaymentRequest:
    out_trade_no: str
    amount_fen: int
    currency: str
    description: str
    notify_url: str
    # Where the payer's browser returns after paying (WeChat's H5 `redirect_url`).
    return_url: str
    expires_at: datetime
    # WeChat Pay's H5 payments check it against the payer's browser; the API should pass the donor's IP.
    payer_client_ip: str | None = None


@dataclass(frozen=True)
class PaymentSession:
    pay_url: str  # open this in the payer's browser
    prepay_id: str


class TradeState(StrEnum):
    SUCCESS = "SUCCESS"
    NOTPAY = "NOTPAY"
    CLOSED = "CLOSED"
    PAYERROR = "PAYERROR"
    USERPAYING = "USERPAYING"
    REFUND = "REFUND"
    REVOKED = "REVOKED"


@dataclass(frozen=True)
class Nonce:
    """A verified notification's nonce: a copy of it within `window_ms` of `seen_at_ms` is a replay."""

    value: str
    seen_at_ms: int
    window_ms: int


@dataclass(frozen=True)
class PaymentResult:
    out_trade_no: str
    transaction_id: str | None  # the provider's id, once paid
    trade_state: TradeState
    amount_fen: int  # the order's total
    currency: str
    success_time: datetime | None
    # A notification's nonce, for the store to record with what the notification changes
    # (None for a query's answer).
    nonce: Nonce | None = None


class RefundStatus(StrEnum):
    SUCCESS = "SUCCESS"
    PROCESSING = "PROCESSING"
    CLOSED = "CLOSED"
    ABNORMAL = "ABNORMAL"


@dataclass(frozen=True)
class RefundResult:
    out_refund_no: str
    refund_id: str
    status: RefundStatus
    amount_fen: int


class NotificationRefused(Exception):
    """A notification that must be answered with HTTP 4xx; `reason` says which check failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ProviderUnavailable(Exception):
    """The provider could not be reached, timed out or answered 5xx: worth trying again later."""


class UnverifiedResponse(ProviderUnavailable):
    """A response whose signature did not verify: its content cannot be trusted.

    A ProviderUnavailable, since the caller can only treat the outcome as
    unknown and ask again; `reason` is the failed check."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"response not verified: {reason}")
        self.reason = reason


class ProviderRefused(Exception):
    """The provider answered 4xx: the request itself is wrong or not allowed in the order's state."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class PaymentProvider(Protocol):
    name: str

    async def create_payment(self, req: PaymentRequest) -> PaymentSession: ...

    def parse_notification(self, headers: Mapping[str, str], body: bytes, now: datetime) -> PaymentResult:
        """Verify, decrypt and read a payment notification; NotificationRefused if it cannot be trusted."""
        ...

    async def query(self, out_trade_no: str) -> PaymentResult: ...

    async def refund(
        self,
        out_trade_no: str,
        out_refund_no: str,
        refund_fen: int,
        total_fen: int,
        currency: str,
        reason: str,
    ) -> RefundResult: ...

    async def close(self, out_trade_no: str) -> None: ...


class NonceStore(Protocol):
    def fresh(self, nonce: str, now_ms: int, window_ms: int) -> bool:
        """False when the nonce was seen less than `window_ms` before `now_ms`: a replay.

        A store records the nonce here. The API uses none: the donor store records
        each notification's nonce (`PaymentResult.nonce`) in the transaction that marks
        the pledge paid, so a confirmed notification costs one write, and its unique
        index refuses a replay.
        """
        ...


class InMemoryNonceStore:
    """Nonces of one process, oldest first; entries older than the window are forgotten.

    Bounded: past `max_entries` the oldest are dropped even inside the window.
    Only notifications whose signature verified get here, so reaching the
    bound takes that many genuine notifications within the window.
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._seen: OrderedDict[str, int] = OrderedDict()
        self._max_entries = max_entries
        # parse_notification is synchronous, so a server may call it from worker threads.
        self._lock = threading.Lock()

    def fresh(self, nonce: str, now_ms: int, window_ms: int) -> bool:
        """Checks and records at once."""
        with self._lock:
            self._forget_older_than(now_ms - window_ms)
            if nonce in self._seen:
                return False
            self._seen[nonce] = now_ms
            while len(self._seen) > self._max_entries:
                self._seen.popitem(last=False)
            return True

    def __len__(self) -> int:
        return len(self._seen)

    def _forget_older_than(self, cutoff_ms: int) -> None:
        while self._seen:
            nonce, seen_ms = next(iter(self._seen.items()))
            if seen_ms > cutoff_ms:
                return
            del self._seen[nonce]
