"""The donor store: pledges, receipt numbers, idempotency keys, nonces and personal data.

Every method is one short transaction. Several API processes may share the
store: uniqueness (out-trade numbers, provider charge ids, receipt numbers,
nonces, idempotency keys) is enforced by the database, never by a process's
memory, and the receipt counter row is locked while a number is taken.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, RowMapping, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from services.donors.adapters import statements as q
from services.donors.adapters import tables as t
from services.donors.domain.pledges import Pledge, PledgeStatus
from services.donors.domain.receipts import receipt_no

IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""


class ChargeAlreadyCounted(Exception):
    """The provider's charge id already confirmed another donation."""


class SeenNonce(Protocol):
    """A verified notification's nonce, as the payment adapter gives it
    (`services.payments.provider.Nonce`): a copy within `window_ms` of `seen_at_ms` is a replay."""

    @property
    def value(self) -> str: ...

    @property
    def seen_at_ms(self) -> int: ...

    @property
    def window_ms(self) -> int: ...


class NonceReplayed(Exception):
    """A notification's nonce was seen within its window: nothing was written."""


PaymentRefused = NonceReplayed | ChargeAlreadyCounted


@dataclass(frozen=True)
class Payment:
    """What a provider's notification (or a query) says: this pledge was paid by this charge."""

    donation_id: str
    charge_id: str
    paid_at_ms: int
    fee_fen: int
    org_code: str  # whose receipt numbers, of which year, it takes
    year: int
    nonce: SeenNonce | None = None


def _refusal(current: Pledge, payment: Payment, counted_for: str | None) -> ChargeAlreadyCounted | None:
    """Why a payment cannot pay its pledge: the pledge was paid by another charge, or
    the charge confirmed another donation. None when it can (or it is a repeat)."""
    if current.status in (PledgeStatus.PAID, PledgeStatus.CONFIRMED):
        if current.provider_charge_id != payment.charge_id:
            return ChargeAlreadyCounted(
                f"donation {current.donation_id} was paid by charge "
                f"{current.provider_charge_id}, not {payment.charge_id}"
            )
        return None
    if counted_for is not None:
        return ChargeAlreadyCounted(f"charge {payment.charge_id} already confirmed donation {counted_for}")
    return None


def _paid_row(pledge: Pledge) -> dict[str, Any]:
    """MARK_PAID's parameters for one pledge."""
    return {"paid_donation_id": pledge.donation_id} | {k: getattr(pledge, k) for k in q.PAID_FIELDS}


@dataclass(frozen=True)
class DonorDetails:
    display_name: str | None
    message: str | None
    # The donor's own AES-256 key: it seals their text on the input topics. None once erased.
    data_key: bytes | None = None

    @classmethod
    def new(cls, display_name: str | None, message: str | None) -> DonorDetails:
        return cls(display_name, message, secrets.token_bytes(32))


def request_hash(body: Mapping[str, Any]) -> str:
    """A stable digest of a request body: the same body, whatever its key order."""
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _pledge(row: RowMapping) -> Pledge:
    values = {k: row[k] for k in Pledge.__dataclass_fields__}
    values["status"] = PledgeStatus(values["status"])
    return Pledge(**values)


# What record_payments raises for something tied to one of its payments rather than to the
# database: the pledge is not there, or a constraint (another process counted the charge id).
PAYMENT_ERRORS: tuple[type[Exception], ...] = (LookupError, IntegrityError)


class DonorStore:
    def __init__(self, engine: Engine, reader: Engine | None = None) -> None:
        """engine writes; reader, if given, serves the reads. On SQLite the writing engine
        takes the database's one write lock at BEGIN, so a read through it would queue
        behind the ledger's batches and every other writer for nothing."""
        self.engine = engine
        self.reader = reader or engine

    # --- pledges -------------------------------------------------------------

    def create_pledge(
        self,
        pledge: Pledge,
        details: DonorDetails,
        *,
        client_hash: str,
        idempotency: tuple[str, str] | None,
        now_ms: int,
    ) -> tuple[Pledge, bool]:
        """Store a new pledge, or return the one an earlier request with this key made.

        Returns (pledge, created). Raises IdempotencyConflict when the key came with another body.
        """
        with self.engine.begin() as conn:
            if idempotency is not None:
                key, digest = idempotency
                conn.execute(
                    delete(t.idempotency_keys).where(
                        t.idempotency_keys.c.created_at_ms < now_ms - IDEMPOTENCY_TTL_MS
                    )
                )
                earlier = conn.execute(
                    select(t.idempotency_keys).where(t.idempotency_keys.c.key == key)
                ).first()
                if earlier is not None:
                    if earlier.request_hash != digest:
                        raise IdempotencyConflict(key)
                    found = self._pledge_where(conn, t.pledges.c.donation_id == earlier.donation_id)
                    assert found is not None  # pledges are never deleted
                    return found, False
                conn.execute(
                    insert(t.idempotency_keys).values(
                        key=key, request_hash=digest, donation_id=pledge.donation_id, created_at_ms=now_ms
                    )
                )
            conn.execute(
                insert(t.donor_data).values(
                    donor_ref=pledge.donor_ref,
                    data_key=base64.b64encode(details.data_key).decode() if details.data_key else None,
                    display_name=details.display_name,
                    message=details.message,
                )
            )
            values = {k: getattr(pledge, k) for k in Pledge.__dataclass_fields__}
            conn.execute(insert(t.pledges).values(**values, client_hash=client_hash))
        return pledge, True

    def pledge_for_key(self, key: str, digest: str, now_ms: int) -> Pledge | None:
        """The pledge an Idempotency-Key made within 24 hours; IdempotencyConflict if the body differs."""
        with self.reader.connect() as conn:
            earlier = conn.execute(
                select(t.idempotency_keys).where(
                    t.idempotency_keys.c.key == key,
                    t.idempotency_keys.c.created_at_ms >= now_ms - IDEMPOTENCY_TTL_MS,
                )
            ).first()
            if earlier is None:
                return None
            if earlier.request_hash != digest:
                raise IdempotencyConflict(key)
            return self._pledge_where(conn, t.pledges.c.donation_id == earlier.donation_id)

    def pledge(self, donation_id: str) -> Pledge | None:
        return self._pledge_by("donation_id", donation_id)

    def pledge_by_trade_no(self, out_trade_no: str) -> Pledge | None:
        return self._pledge_by("out_trade_no", out_trade_no)

    def pledge_by_receipt(self, receipt: str) -> Pledge | None:
        return self._pledge_by("receipt_no", receipt)

    def _pledge_by(self, column: str, value: str) -> Pledge | None:
        with self.reader.connect() as conn:
            row = conn.execute(q.PLEDGE_BY[column], {"value": value}).mappings().first()
        return _pledge(row) if row is not None else None

    @staticmethod
    def _pledge_where(conn: Connection, condition: Any) -> Pledge | None:
        row = conn.execute(select(t.pledges).where(condition)).mappings().first()
        return _pledge(row) if row is not None else None

    def count_since(
        self, *, client_hash: str | None = None, project_id: str | None = None, since_ms: int
    ) -> int:
        """Pledges made since `since_ms` by one client or for one project (the rate limits)."""
        condition = t.pledges.c.created_at_ms >= since_ms
        if client_hash is not None:
            condition = and_(condition, t.pledges.c.client_hash == client_hash)
        if project_id is not None:
            condition = and_(condition, t.pledges.c.project_id == project_id)
        with self.reader.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(t.pledges).where(condition)) or 0)

    def record_payments(
        self, payments: Sequence[Payment], confirmed: Sequence[str] = ()
    ) -> list[Pledge | PaymentRefused]:
        """The provider says these pledges are paid, and the broker acknowledged the
        confirmations of `confirmed`: all of it in one transaction, one commit.

        Each payment's outcome, in order: the pledge paid with its receipt number (taken
        once: a pledge already paid is returned as it is, a repeated notification), or
        why it was refused, with nothing of it written but its nonce:
        * NonceReplayed: the notification's nonce was seen within its window (nothing
          at all is written for it, not even the nonce);
        * ChargeAlreadyCounted: the charge id confirmed another donation, or the pledge
          was paid by another charge (the nonce is recorded: the notification was spent).
        A pledge the store does not have is a LookupError, and a charge id counted by
        another process at the same moment an IntegrityError: either ends the whole batch
        (PAYMENT_ERRORS; the caller may write its payments one at a time to find whose).
        """
        outcomes: list[str | PaymentRefused] = []  # a donation id: its pledge as it ends up
        with self.engine.begin() as conn:
            pledges, counted = self._lock_pledges(conn, payments, confirmed)
            newly_paid: list[Payment] = []
            for payment in payments:
                if payment.nonce is not None and not self._record_nonce(conn, payment.nonce):
                    outcomes.append(NonceReplayed(payment.nonce.value))
                    continue
                current = pledges[payment.donation_id]
                refused = _refusal(current, payment, counted.get(payment.charge_id))
                outcomes.append(refused or payment.donation_id)
                if refused is not None or current.status in (PledgeStatus.PAID, PledgeStatus.CONFIRMED):
                    continue  # refused, or a repeat: the pledge as it is
                # A payment that arrives after the pledge was given up is still money received:
                # it is confirmed (the ledger books it, to suspense if need be), never dropped.
                pledges[payment.donation_id] = replace(
                    current,
                    status=PledgeStatus.PAID,
                    provider_charge_id=payment.charge_id,
                    paid_at_ms=payment.paid_at_ms,
                    fee_fen=payment.fee_fen,
                    failure_reason=None,
                )
                counted[payment.charge_id] = payment.donation_id
                newly_paid.append(payment)
            for paid in self._numbered(conn, pledges, newly_paid):
                pledges[paid.donation_id] = paid
            if newly_paid:
                rows = [_paid_row(pledges[p.donation_id]) for p in newly_paid]
                conn.execute(q.MARK_PAID, rows)
            if confirmed:
                conn.execute(q.MARK_CONFIRMED, {"confirmed_ids": list(confirmed)})
        return [pledges[o] if isinstance(o, str) else o for o in outcomes]

    @staticmethod
    def _lock_pledges(
        conn: Connection, payments: Sequence[Payment], confirmed: Sequence[str]
    ) -> tuple[dict[str, Pledge], dict[str, str]]:
        """The pledges of the payments and of the confirmations, locked (two copies of one
        notification arriving together must not both see it unpaid and take two numbers),
        and which donation each of the payments' charge ids already confirmed.

        All of them in one statement, in one order, before anything else (the receipt
        counters come after): batches of several API processes then never hold one
        pledge while waiting for another's."""
        paying = {p.donation_id for p in payments}
        if not paying and not confirmed:
            return {}, {}
        wanted = sorted(paying | set(confirmed))
        rows = conn.execute(q.PLEDGES_FOR_UPDATE, {"donation_ids": wanted}).mappings().all()
        pledges = {row["donation_id"]: _pledge(row) for row in rows}
        missing = paying - pledges.keys()
        if missing:
            raise LookupError(f"no pledge {sorted(missing)[0]!r}")
        if not payments:
            return pledges, {}
        charges = sorted({p.charge_id for p in payments})
        counted = {
            row.provider_charge_id: row.donation_id
            for row in conn.execute(q.CHARGES_COUNTED, {"charge_ids": charges})
        }
        return pledges, counted

    def _numbered(
        self, conn: Connection, pledges: Mapping[str, Pledge], newly_paid: Sequence[Payment]
    ) -> Iterator[Pledge]:
        """The newly paid pledges with their receipt numbers, taken in the order they came.

        Each organisation's year takes its numbers in one statement; the counters are
        taken in one order (as the pledges are) so that batches never wait in a circle."""
        counters: dict[tuple[str, int], list[Payment]] = {}
        for payment in newly_paid:
            counters.setdefault((payment.org_code, payment.year), []).append(payment)
        for (code, year), taking in sorted(counters.items()):
            first = self._next_receipt_numbers(conn, code, year, len(taking))
            for number, payment in enumerate(taking, start=first):
                yield replace(pledges[payment.donation_id], receipt_no=receipt_no(code, year, number))

    @staticmethod
    def _next_receipt_numbers(conn: Connection, org_code: str, year: int, taken: int) -> int:
        """Take `taken` numbers of an organisation's year; returns the first of them.

        The UPDATE takes the counter row's lock (SQLite: the database's write lock, held
        since BEGIN IMMEDIATE), so two processes never take the same number, and the
        numbers commit or roll back with the pledges: no gaps."""
        counter = {"counter_org": org_code, "counter_year": year, "taken": taken}
        last = conn.execute(q.BUMP_RECEIPT_COUNTER, counter).scalar()
        if last is None:
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(t.receipt_counters).values(org_code=org_code, year=year, last_no=taken)
                    )
                return 1
            except IntegrityError:  # another process created it first
                last = conn.execute(q.BUMP_RECEIPT_COUNTER, counter).scalar_one()
        return int(last) - taken + 1

    def mark_failed(self, donation_id: str, reason: str) -> bool:
        """A pending pledge the provider says was never paid. False if it is no longer pending."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(t.pledges)
                .where(t.pledges.c.donation_id == donation_id, t.pledges.c.status == PledgeStatus.PENDING)
                .values(status=PledgeStatus.FAILED, failure_reason=reason)
            )
            return changed.rowcount == 1

    def due(self, now_ms: int, paid_grace_ms: int, limit: int = 100) -> list[Pledge]:
        """Pledges to reconcile: pending past their expiry, or paid but unconfirmed for a while."""
        condition = and_(
            t.pledges.c.status == PledgeStatus.PENDING, t.pledges.c.expires_at_ms <= now_ms
        ) | and_(t.pledges.c.status == PledgeStatus.PAID, t.pledges.c.paid_at_ms <= now_ms - paid_grace_ms)
        with self.reader.connect() as conn:
            rows = conn.execute(select(t.pledges).where(condition).limit(limit)).mappings().all()
        return [_pledge(r) for r in rows]

    # --- notifications ---------------------------------------------------------

    def remember(self, nonce: SeenNonce) -> bool:
        """Record a nonce on its own (`record_payments` records the nonce of a notification that pays);
        False when it was seen within its window: a replay."""
        with self.engine.begin() as conn:
            return self._record_nonce(conn, nonce)

    @staticmethod
    def _record_nonce(conn: Connection, nonce: SeenNonce) -> bool:
        """False when the nonce was seen within its window (statements.RECORD_NONCE says how)."""
        seen = {"nonce": nonce.value, "seen_at_ms": nonce.seen_at_ms}
        seen["window_start_ms"] = nonce.seen_at_ms - nonce.window_ms
        return conn.execute(q.RECORD_NONCE[conn.dialect.name], seen).first() is not None

    def forget_nonces(self, before_ms: int) -> int:
        """Drop nonces seen before `before_ms` (their windows are over); returns how many."""
        with self.engine.begin() as conn:
            gone = conn.execute(
                delete(t.notification_nonces).where(t.notification_nonces.c.seen_at_ms < before_ms)
            )
            return gone.rowcount

    # --- personal data ---------------------------------------------------------

    def details(self, donor_ref: str) -> DonorDetails | None:
        with self.reader.connect() as conn:
            row = conn.execute(q.DONOR_DATA, {"donor_ref": donor_ref}).first()
        if row is None:
            return None
        key = base64.b64decode(row.data_key) if row.data_key else None
        return DonorDetails(row.display_name, row.message, key)

    def erase(self, donor_ref: str, now_ms: int) -> bool:
        """Forget a donor's name, message and data key; the gift, receipt and proofs stay."""
        with self.engine.begin() as conn:
            changed = conn.execute(
                update(t.donor_data)
                .where(t.donor_data.c.donor_ref == donor_ref)
                .values(data_key=None, display_name=None, message=None, erased_at_ms=now_ms)
            )
            return changed.rowcount == 1
