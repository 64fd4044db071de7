"""Payments written in batches by one thread: group commit for the notification path.

Every payment notification writes to the donor store twice: the pledge paid (with its
receipt number and the notification's nonce) before the gift is published, and marked
confirmed once the broker acknowledged it. Written one by one from a pool of threads,
each write is a transaction of its own, and on SQLite each takes the database's one
write lock, which the ledger's batches need too: at a few hundred notifications a
second the API's threads and the ledger spent their time waiting for one another in
SQLite's busy handler, with the cores half idle.

Here one thread writes: whatever arrived while it wrote the previous batch is the next
batch, one transaction. A notification alone is written at once (no timer, no added
wait); under load the batches grow by themselves and each gift costs a fraction of a
commit. Each payment keeps its own outcome, refusals included (see
`DonorStore.record_payments`): a batch that fails for one of its payments (its pledge
gone, its charge id counted by another process a moment before) is written again one
payment at a time, so that only that payment fails.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from services.donors.adapters.store import PAYMENT_ERRORS, DonorDetails, DonorStore, Payment, PaymentRefused
from services.donors.domain.pledges import Pledge, PledgeStatus

log = logging.getLogger(__name__)

# Enough to take a burst in a few commits, few enough that the write lock is not held long.
MAX_BATCH = 100

Paid = tuple[Pledge, DonorDetails | None]
Outcome = Paid | PaymentRefused | Exception  # an exception: what this payment alone failed with


class PaymentWriter:
    """Writes payments and confirmations for the one event loop it is used from."""

    def __init__(self, store: DonorStore, max_batch: int = MAX_BATCH) -> None:
        self.store = store
        self.max_batch = max_batch
        self._payments: list[tuple[Payment, asyncio.Future[Paid]]] = []
        self._confirmed: list[str] = []  # acknowledged gifts not yet marked confirmed
        self._writing: asyncio.Task[None] | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="payment-writer")

    async def paid(self, payment: Payment) -> Paid:
        """The pledge paid (or as it was: a repeat) and the donor's details its confirmation
        carries (None for a repeat, which needs none). Raises the payment's refusal
        (NonceReplayed, ChargeAlreadyCounted), or what the database raised for the batch."""
        paid: asyncio.Future[Paid] = asyncio.get_running_loop().create_future()
        self._payments.append((payment, paid))
        self._write_soon()
        return await paid

    def confirmed(self, donation_id: str) -> None:
        """The broker acknowledged this gift's confirmation: mark it, with the next batch.

        Nobody waits for it: a confirmation acknowledged but not yet marked (the process
        died in between) is published again by reconciliation, and the ledger takes an
        identical event once."""
        self._confirmed.append(donation_id)
        self._write_soon()

    async def written(self) -> None:
        """Wait until everything handed over so far is written (at shutdown: the gifts
        acknowledged last are marked now, not published again by reconciliation)."""
        writing = self._writing
        if writing is not None and writing.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(writing)

    def _write_soon(self) -> None:
        writing = self._writing
        # A task of another loop is one that loop left behind when it closed (a test
        # client runs a loop of its own): this loop writes what is waiting.
        if writing is None or writing.get_loop() is not asyncio.get_running_loop():
            self._writing = asyncio.create_task(self._write_all())

    async def _write_all(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._payments or self._confirmed:
                batch, self._payments = self._payments[: self.max_batch], self._payments[self.max_batch :]
                confirmed, self._confirmed = self._confirmed, []
                payments = [payment for payment, _ in batch]
                try:
                    outcomes = await loop.run_in_executor(self._thread, self._write, payments, confirmed)
                except asyncio.CancelledError:  # the loop is going away: so are the requests
                    for _, waiting in batch:
                        waiting.cancel()
                    raise
                except Exception as exc:  # the database away: the provider retries each payment
                    if confirmed:  # and reconciliation publishes these again later
                        log.exception("could not mark %d acknowledged gifts confirmed", len(confirmed))
                    for _, waiting in batch:
                        if not waiting.done():
                            waiting.set_exception(exc)
                    continue
                for (_, waiting), outcome in zip(batch, outcomes, strict=True):
                    if waiting.done():  # its request went away; the payment is written all the same
                        continue
                    if isinstance(outcome, Exception):
                        waiting.set_exception(outcome)
                    else:
                        waiting.set_result(outcome)
        finally:
            if self._writing is asyncio.current_task():
                self._writing = None

    def _write(self, payments: Sequence[Payment], confirmed: Sequence[str]) -> list[Outcome]:
        """One transaction, then the donors' details of the newly paid, read after the
        commit so that the write lock is not held for them. Raises only when nothing of
        the batch was written."""
        try:
            recorded: list[Pledge | Exception] = list(self.store.record_payments(payments, confirmed))
        except PAYMENT_ERRORS:
            if len(payments) < 2:
                raise
            recorded = self._one_at_a_time(payments, confirmed)
        return [o if isinstance(o, Exception) else self._with_details(o) for o in recorded]

    def _one_at_a_time(
        self, payments: Sequence[Payment], confirmed: Sequence[str]
    ) -> list[Pledge | Exception]:
        """The batch failed for one of its payments: each in a transaction of its own, the
        confirmations in one more first; a failure goes to the payment it belongs to (any
        failure: the payments written before it stay written, and keep their outcomes)."""
        if confirmed:
            self.store.record_payments([], confirmed)
        recorded: list[Pledge | Exception] = []
        for payment in payments:
            try:
                recorded.extend(self.store.record_payments([payment]))
            except Exception as exc:
                recorded.append(exc)
        return recorded

    def _with_details(self, pledge: Pledge) -> Paid | Exception:
        """The pledge and its donor's details; an error reading them goes to this payment
        alone (it is written: the provider's retry finds it paid and publishes it then)."""
        if pledge.status == PledgeStatus.CONFIRMED:
            return pledge, None  # a repeat: nothing is published again
        try:
            return pledge, self.store.details(pledge.donor_ref)
        except Exception as exc:
            return exc
