"""The payment writer: one thread, batches of whatever arrived meanwhile, each payment its own outcome."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import replace

import pytest

from services.api.payment_writer import PaymentWriter
from services.donors.adapters.store import (
    ChargeAlreadyCounted,
    DonorDetails,
    NonceReplayed,
    Payment,
    PaymentRefused,
)
from services.donors.domain.pledges import Pledge, PledgeStatus
from tests.fixtures.factories import a_pledge

DETAILS = DonorDetails("王小明", "加油", b"k" * 32)


class Nonce:
    value = "n1"
    seen_at_ms = 1_000
    window_ms = 300_000


class RecordingStore:
    """Stands in for the donor store: records each transaction; `hold` keeps the first waiting."""

    def __init__(self) -> None:
        self.pledges: dict[str, Pledge] = {}
        self.batches: list[tuple[list[str], list[str]]] = []
        self.details_read: list[str] = []
        self.threads: set[str] = set()
        self.hold = threading.Event()
        self.hold.set()
        self.writing = threading.Event()
        self.fail_next = False
        self.missing: set[str] = set()  # pledges that are not there: their batch fails
        self.unreadable: set[str] = set()  # donors whose details cannot be read
        self.away_when_alone: set[str] = set()  # the database goes away as these are written alone

    def add(self, pledge: Pledge) -> Payment:
        self.pledges[pledge.donation_id] = pledge
        return Payment(pledge.donation_id, f"charge-{pledge.donation_id}", 5_000, 0, "SIP", 2026)

    def record_payments(
        self, payments: Sequence[Payment], confirmed: Sequence[str] = ()
    ) -> list[Pledge | PaymentRefused]:
        self.threads.add(threading.current_thread().name)
        self.writing.set()
        self.hold.wait(5)
        self.batches.append(([p.donation_id for p in payments], list(confirmed)))
        if self.fail_next:
            self.fail_next = False
            raise ConnectionError("database away")
        for payment in payments:
            if payment.donation_id in self.missing:
                raise LookupError(f"no pledge {payment.donation_id!r}")
        if len(payments) == 1 and payments[0].donation_id in self.away_when_alone:
            raise ConnectionError("database away")
        outcomes: list[Pledge | PaymentRefused] = []
        for payment in payments:
            if payment.charge_id == "reused":
                outcomes.append(ChargeAlreadyCounted("charge reused"))
            elif payment.nonce is not None:
                outcomes.append(NonceReplayed(payment.nonce.value))
            else:
                pledge = self.pledges[payment.donation_id]
                if pledge.status == PledgeStatus.PENDING:
                    pledge = replace(pledge, status=PledgeStatus.PAID, receipt_no="SIP-2026-0000001")
                    self.pledges[payment.donation_id] = pledge
                outcomes.append(pledge)
        return outcomes

    def details(self, donor_ref: str) -> DonorDetails:
        self.details_read.append(donor_ref)
        if donor_ref in self.unreadable:
            raise ConnectionError("database away")
        return DETAILS


def writer_for(store: RecordingStore, max_batch: int = 100) -> PaymentWriter:
    return PaymentWriter(store, max_batch)  # type: ignore[arg-type]  # the writer needs only these


async def confirm(writer: PaymentWriter, donation_id: str) -> None:
    """A confirmation as a task of a gather: handed over after the payments before it."""
    writer.confirmed(donation_id)


def test_a_payment_alone_is_written_at_once_with_the_donors_details() -> None:
    store = RecordingStore()
    payment = store.add(a_pledge())

    async def run() -> tuple[Pledge, DonorDetails | None]:
        return await writer_for(store).paid(payment)

    paid, details = asyncio.run(run())
    assert paid.status == PledgeStatus.PAID and paid.receipt_no == "SIP-2026-0000001"
    assert details == DETAILS
    assert store.batches == [([payment.donation_id], [])]
    assert store.threads == {"payment-writer_0"}


def test_what_arrives_during_a_write_is_the_next_batch_confirmations_included() -> None:
    store = RecordingStore()
    first, *rest = [store.add(a_pledge()) for _ in range(5)]

    async def run() -> list[tuple[Pledge, DonorDetails | None]]:
        writer = writer_for(store)
        store.hold.clear()
        writing_first = asyncio.create_task(writer.paid(first))
        await asyncio.to_thread(store.writing.wait, 5)  # the first batch holds the writer
        writer.confirmed("acknowledged-1")
        others = [asyncio.create_task(writer.paid(p)) for p in rest]
        writer.confirmed("acknowledged-2")
        await asyncio.sleep(0)  # they are all waiting now
        store.hold.set()
        done = [await writing_first] + [await task for task in others]
        await writer.written()
        return done

    done = asyncio.run(run())
    assert store.batches == [
        ([first.donation_id], []),
        ([p.donation_id for p in rest], ["acknowledged-1", "acknowledged-2"]),
    ]
    assert [paid.donation_id for paid, _ in done] == [first.donation_id] + [p.donation_id for p in rest]
    assert store.threads == {"payment-writer_0"}


def test_batches_are_no_larger_than_the_most_allowed() -> None:
    store = RecordingStore()
    payments = [store.add(a_pledge()) for _ in range(7)]

    async def run() -> None:
        writer = writer_for(store, max_batch=3)
        await asyncio.gather(*(writer.paid(p) for p in payments))

    asyncio.run(run())
    assert [len(paid) for paid, _ in store.batches] == [3, 3, 1]


def test_each_refusal_reaches_only_its_own_payment_and_a_repeat_reads_no_details() -> None:
    store = RecordingStore()
    good, reused, replayed, repeated = (store.add(a_pledge()) for _ in range(4))
    store.pledges[repeated.donation_id] = replace(
        store.pledges[repeated.donation_id], status=PledgeStatus.CONFIRMED
    )

    async def run() -> list[object]:
        writer = writer_for(store)
        return list(
            await asyncio.gather(
                writer.paid(good),
                writer.paid(replace(reused, charge_id="reused")),
                writer.paid(replace(replayed, nonce=Nonce())),
                writer.paid(repeated),
                return_exceptions=True,
            )
        )

    paid, refused, replay, repeat = asyncio.run(run())
    assert isinstance(paid, tuple) and paid[0].status == PledgeStatus.PAID
    assert isinstance(refused, ChargeAlreadyCounted)
    assert isinstance(replay, NonceReplayed)
    assert isinstance(repeat, tuple) and repeat == (store.pledges[repeated.donation_id], None)
    assert store.details_read == [store.pledges[good.donation_id].donor_ref]
    assert len(store.batches) == 1


def test_a_batch_the_database_refused_fails_its_payments_and_the_next_batch_is_written() -> None:
    store = RecordingStore()
    lost, later = store.add(a_pledge()), store.add(a_pledge())

    async def run() -> tuple[Pledge, DonorDetails | None]:
        writer = writer_for(store)
        store.fail_next = True
        writer.confirmed("acknowledged")
        with pytest.raises(ConnectionError, match="database away"):
            await writer.paid(lost)
        return await writer.paid(later)

    paid, _ = asyncio.run(run())
    assert paid.donation_id == later.donation_id
    # The confirmation went with the failed batch: reconciliation publishes it again later.
    assert store.batches == [([lost.donation_id], ["acknowledged"]), ([later.donation_id], [])]


def test_a_payment_whose_request_went_away_is_written_all_the_same() -> None:
    store = RecordingStore()
    payment = store.add(a_pledge())

    async def run() -> None:
        writer = writer_for(store)
        store.hold.clear()
        request = asyncio.create_task(writer.paid(payment))
        await asyncio.to_thread(store.writing.wait, 5)
        request.cancel()  # the provider hung up
        store.hold.set()
        await writer.written()

    asyncio.run(run())
    assert store.pledges[payment.donation_id].status == PledgeStatus.PAID


def test_a_batch_failed_by_one_payment_is_written_again_one_at_a_time() -> None:
    store = RecordingStore()
    before, gone, after = (store.add(a_pledge()) for _ in range(3))
    store.missing.add(gone.donation_id)

    async def run() -> list[object]:
        writer = writer_for(store)
        paying = [writer.paid(before), writer.paid(gone), writer.paid(after)]
        return list(await asyncio.gather(*paying, confirm(writer, "acknowledged"), return_exceptions=True))[
            :3
        ]

    first, failed, last = asyncio.run(run())
    assert isinstance(failed, LookupError)
    for outcome, payment in ((first, before), (last, after)):
        assert isinstance(outcome, tuple) and outcome[0].donation_id == payment.donation_id
        assert outcome[0].status == PledgeStatus.PAID
    ids = [before.donation_id, gone.donation_id, after.donation_id]
    assert store.batches == [
        (ids, ["acknowledged"]),
        ([], ["acknowledged"]),
        ([before.donation_id], []),
        ([gone.donation_id], []),
        ([after.donation_id], []),
    ]


def test_details_that_cannot_be_read_fail_only_their_payment_and_the_batch_stays_written(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = RecordingStore()
    unlucky, lucky = store.add(a_pledge()), store.add(a_pledge())
    store.unreadable.add(store.pledges[unlucky.donation_id].donor_ref)

    async def run() -> list[object]:
        writer = writer_for(store)
        paying = [writer.paid(unlucky), writer.paid(lucky)]
        return list(await asyncio.gather(*paying, confirm(writer, "acknowledged"), return_exceptions=True))[
            :2
        ]

    failed, paid = asyncio.run(run())
    assert isinstance(failed, ConnectionError)  # the provider retries it: a repeat, published then
    assert isinstance(paid, tuple) and paid == (store.pledges[lucky.donation_id], DETAILS)
    assert store.pledges[unlucky.donation_id].status == PledgeStatus.PAID
    assert len(store.batches) == 1
    assert "could not mark" not in caplog.text  # the confirmation was written with the batch


def test_a_payment_whose_request_went_away_while_it_waited_for_its_batch_is_written() -> None:
    store = RecordingStore()
    first, queued = store.add(a_pledge()), store.add(a_pledge())

    async def run() -> None:
        writer = writer_for(store)
        store.hold.clear()
        writing = asyncio.create_task(writer.paid(first))
        await asyncio.to_thread(store.writing.wait, 5)  # the first batch holds the writer
        request = asyncio.create_task(writer.paid(queued))
        await asyncio.sleep(0)  # it is waiting for the next batch
        request.cancel()  # the provider hung up
        store.hold.set()
        await writing
        await writer.written()

    asyncio.run(run())
    assert store.batches == [([first.donation_id], []), ([queued.donation_id], [])]
    assert store.pledges[queued.donation_id].status == PledgeStatus.PAID


def test_written_one_at_a_time_a_database_error_fails_only_the_payment_it_came_with() -> None:
    store = RecordingStore()
    written, gone, unlucky = (store.add(a_pledge()) for _ in range(3))
    store.missing.add(gone.donation_id)
    store.away_when_alone.add(unlucky.donation_id)

    async def run() -> list[object]:
        writer = writer_for(store)
        return list(
            await asyncio.gather(
                writer.paid(written), writer.paid(gone), writer.paid(unlucky), return_exceptions=True
            )
        )

    paid, missing, away = asyncio.run(run())
    assert isinstance(paid, tuple) and paid[0].status == PledgeStatus.PAID  # written: it says so
    assert isinstance(missing, LookupError) and isinstance(away, ConnectionError)
    assert store.pledges[written.donation_id].status == PledgeStatus.PAID
    assert store.pledges[unlucky.donation_id].status == PledgeStatus.PENDING
