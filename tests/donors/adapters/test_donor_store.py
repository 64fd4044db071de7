"""The donor store's contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from services.donors.adapters import tables as t
from services.donors.adapters.store import (
    ChargeAlreadyCounted,
    DonorDetails,
    DonorStore,
    IdempotencyConflict,
    NonceReplayed,
    Payment,
)
from services.donors.domain.pledges import Pledge, PledgeStatus
from services.ledger.adapters.store import LedgerStore
from services.payments.provider import Nonce
from services.platform.db import make_engine
from tests.fixtures.donor_payments import mark_paid
from tests.fixtures.factories import a_pledge

KNOWN = DonorDetails.new("王小明", "加油")

pytestmark = pytest.mark.integration  # needs the PostgreSQL server


@pytest.fixture
def donors(db_url: str) -> Iterator[DonorStore]:
    engine, reader = make_engine(db_url), make_engine(db_url, writer=False)
    LedgerStore(engine).migrate()
    yield DonorStore(engine, reader)  # as the API has it: reads never take SQLite's write lock
    engine.dispose()
    reader.dispose()


def make(store: DonorStore, pledge: Pledge, key: tuple[str, str] | None = None, client: str = "c1") -> Pledge:
    made, _ = store.create_pledge(
        pledge,
        KNOWN,
        client_hash=client,
        idempotency=key,
        now_ms=pledge.created_at_ms,
    )
    return made


def test_pledge_round_trip_and_lookups(donors: DonorStore) -> None:
    pledge = make(donors, a_pledge())
    assert donors.pledge(pledge.donation_id) == pledge
    assert donors.pledge_by_trade_no(pledge.out_trade_no) == pledge
    assert donors.details(pledge.donor_ref) == KNOWN


def test_idempotency_key_same_body_same_pledge_other_body_conflict(donors: DonorStore) -> None:
    first = make(donors, a_pledge(), key=("k1", "body-a"))
    again, created = donors.create_pledge(
        a_pledge(),
        DonorDetails(None, None, None),
        client_hash="c1",
        idempotency=("k1", "body-a"),
        now_ms=2_000,
    )
    assert (again, created) == (first, False)
    assert donors.pledge_for_key("k1", "body-a", now_ms=2_000) == first
    with pytest.raises(IdempotencyConflict):
        donors.create_pledge(
            a_pledge(),
            DonorDetails(None, None, None),
            client_hash="c1",
            idempotency=("k1", "body-b"),
            now_ms=2_000,
        )
    # After 24 hours the key is forgotten and makes a new donation.
    later = 1_000 + 24 * 3600 * 1000 + 1
    assert donors.pledge_for_key("k1", "body-a", now_ms=later) is None
    fresh, created = donors.create_pledge(
        a_pledge(created_at_ms=later),
        DonorDetails(None, None, None),
        client_hash="c1",
        idempotency=("k1", "body-a"),
        now_ms=later,
    )
    assert created and fresh.donation_id != first.donation_id


def test_counts_for_rate_limits(donors: DonorStore) -> None:
    for at in (1_000, 2_000, 70_000):
        make(donors, a_pledge(created_at_ms=at), client="c1")
    make(donors, a_pledge(created_at_ms=70_000, project_id="p2"), client="c2")
    assert donors.count_since(client_hash="c1", since_ms=10_000) == 1
    assert donors.count_since(client_hash="c1", since_ms=0) == 3
    assert donors.count_since(project_id="p1", since_ms=0) == 3
    assert donors.count_since(project_id="p2", since_ms=0) == 1


def test_receipt_numbers_are_gap_free_per_organisation_and_year(donors: DonorStore) -> None:
    pledges = [make(donors, a_pledge()) for _ in range(3)]
    numbers = [
        mark_paid(donors, p.donation_id, f"charge-{i}", 5_000, 0, "SIP", 2026).receipt_no
        for i, p in enumerate(pledges)
    ]
    assert numbers == ["SIP-2026-0000001", "SIP-2026-0000002", "SIP-2026-0000003"]
    other = make(donors, a_pledge())
    assert (
        mark_paid(donors, other.donation_id, "charge-x", 5_000, 0, "ORGAB12C", 2026).receipt_no
        == "ORGAB12C-2026-0000001"
    )
    next_year = make(donors, a_pledge())
    assert (
        mark_paid(donors, next_year.donation_id, "charge-y", 5_000, 0, "SIP", 2027).receipt_no
        == "SIP-2027-0000001"
    )


def test_concurrent_payments_never_share_or_skip_a_number(donors: DonorStore) -> None:
    pledges = [make(donors, a_pledge()) for _ in range(16)]
    numbers: list[str | None] = []
    lock = threading.Lock()

    def pay(p: Pledge) -> None:
        paid = mark_paid(donors, p.donation_id, f"charge-{p.donation_id}", 5_000, 0, "SIP", 2026)
        with lock:
            numbers.append(paid.receipt_no)

    threads = [threading.Thread(target=pay, args=(p,)) for p in pledges]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(n or "" for n in numbers) == [f"SIP-2026-{i:07d}" for i in range(1, 17)]


def test_a_repeated_payment_is_the_same_receipt_and_a_reused_charge_is_refused(donors: DonorStore) -> None:
    pledge, other = make(donors, a_pledge()), make(donors, a_pledge())
    paid = mark_paid(donors, pledge.donation_id, "charge-1", 5_000, 0, "SIP", 2026)
    assert mark_paid(donors, pledge.donation_id, "charge-1", 5_000, 0, "SIP", 2026) == paid
    with pytest.raises(ChargeAlreadyCounted):
        mark_paid(donors, other.donation_id, "charge-1", 5_000, 0, "SIP", 2026)
    with pytest.raises(ChargeAlreadyCounted):
        mark_paid(donors, pledge.donation_id, "charge-2", 5_000, 0, "SIP", 2026)
    assert donors.pledge(other.donation_id) == other  # untouched, and no number was used up
    third = make(donors, a_pledge())
    assert (
        mark_paid(donors, third.donation_id, "charge-3", 5_000, 0, "SIP", 2026).receipt_no
        == "SIP-2026-0000002"
    )


def test_states_and_what_is_due(donors: DonorStore) -> None:
    unpaid, paid = make(donors, a_pledge(expires_at_ms=10_000)), make(donors, a_pledge(expires_at_ms=10_000))
    mark_paid(donors, paid.donation_id, "charge-1", 5_000, 0, "SIP", 2026)
    assert donors.due(now_ms=9_999, paid_grace_ms=30_000) == []
    assert [p.donation_id for p in donors.due(now_ms=10_000, paid_grace_ms=30_000)] == [unpaid.donation_id]
    assert {p.donation_id for p in donors.due(now_ms=35_000, paid_grace_ms=30_000)} == {
        unpaid.donation_id,
        paid.donation_id,
    }
    assert donors.mark_failed(unpaid.donation_id, "not paid")
    assert not donors.mark_failed(unpaid.donation_id, "not paid")  # already failed
    assert not donors.mark_failed(paid.donation_id, "not paid")  # paid stays paid
    donors.record_payments(
        [], confirmed=[paid.donation_id, unpaid.donation_id]
    )  # only a paid one becomes confirmed
    assert donors.pledge(paid.donation_id).status == PledgeStatus.CONFIRMED  # type: ignore[union-attr]
    assert donors.pledge(unpaid.donation_id).status == PledgeStatus.FAILED  # type: ignore[union-attr]
    assert donors.due(now_ms=99_000, paid_grace_ms=30_000) == []
    # Money that arrives after the pledge was given up is still booked.
    late = mark_paid(donors, unpaid.donation_id, "charge-late", 99_000, 0, "SIP", 2026)
    assert late.status == PledgeStatus.PAID and late.receipt_no == "SIP-2026-0000002"


def test_nonces_are_remembered_for_the_window(donors: DonorStore) -> None:
    assert donors.remember(Nonce("n1", 1_000, 300_000))
    assert not donors.remember(Nonce("n1", 2_000, 300_000))
    assert donors.remember(Nonce("n2", 2_000, 300_000))
    assert donors.remember(Nonce("n1", 301_001, 300_000))  # past the window, though not yet deleted
    assert not donors.remember(Nonce("n1", 302_000, 300_000))
    assert donors.forget_nonces(before_ms=301_000) == 1  # n2; n1 was seen again at 301,001
    assert not donors.remember(Nonce("n1", 303_000, 300_000))
    assert donors.forget_nonces(before_ms=400_000) == 1
    assert donors.remember(Nonce("n1", 400_000, 300_000))


def test_a_payment_records_its_nonce_in_the_same_transaction(donors: DonorStore) -> None:
    pledge, other = make(donors, a_pledge()), make(donors, a_pledge())
    paid = mark_paid(
        donors, pledge.donation_id, "charge-1", 5_000, 0, "SIP", 2026, Nonce("n1", 5_000, 600_000)
    )
    with pytest.raises(NonceReplayed):  # a replay changes nothing, not even another pledge
        mark_paid(donors, other.donation_id, "charge-2", 6_000, 0, "SIP", 2026, Nonce("n1", 6_000, 600_000))
    assert donors.pledge(other.donation_id) == other
    # A repeated notification (a new nonce) finds the pledge paid, with its one number.
    assert (
        mark_paid(donors, pledge.donation_id, "charge-1", 5_000, 0, "SIP", 2026, Nonce("n2", 7_000, 600_000))
        == paid
    )
    assert donors.pledge(pledge.donation_id) == paid


def test_erasing_forgets_the_person_not_the_gift(donors: DonorStore) -> None:
    pledge = make(donors, a_pledge())
    paid = mark_paid(donors, pledge.donation_id, "charge-1", 5_000, 0, "SIP", 2026)
    assert donors.erase(pledge.donor_ref, now_ms=9_000)
    assert donors.details(pledge.donor_ref) == DonorDetails(None, None, None)
    assert donors.pledge_by_receipt(paid.receipt_no or "") == paid


def test_one_payment_notified_twice_at_once_takes_one_number(donors: DonorStore) -> None:
    pledges = [make(donors, a_pledge()) for _ in range(8)]
    results: list[str | None] = []
    lock = threading.Lock()

    def pay(p: Pledge) -> None:
        paid = mark_paid(donors, p.donation_id, f"charge-{p.donation_id}", 5_000, 0, "SIP", 2026)
        with lock:
            results.append(paid.receipt_no)

    threads = [threading.Thread(target=pay, args=(p,)) for p in pledges for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(n or "" for n in results)) == [f"SIP-2026-{i:07d}" for i in range(1, 9)]
    assert len(results) == 16  # every copy answered with its pledge's one number


def test_a_batch_of_payments_is_numbered_in_the_order_it_came_each_refused_one_alone(
    donors: DonorStore,
) -> None:
    a, b, c, replayed, confirmed = (make(donors, a_pledge()) for _ in range(5))
    before = mark_paid(donors, confirmed.donation_id, "charge-0", 1_000, 0, "SIP", 2026)
    outcomes = donors.record_payments(
        [
            Payment(b.donation_id, "charge-b", 5_000, 0, "SIP", 2026, Nonce("nb", 5_000, 600_000)),
            Payment(a.donation_id, "charge-a", 5_000, 0, "ORGAB12C", 2026),
            Payment(c.donation_id, "charge-b", 5_000, 0, "SIP", 2026, Nonce("nc", 5_000, 600_000)),
            Payment(b.donation_id, "charge-b", 5_001, 0, "SIP", 2026, Nonce("nb2", 5_001, 600_000)),
            Payment(replayed.donation_id, "charge-r", 5_000, 0, "SIP", 2026, Nonce("nb", 5_002, 600_000)),
            Payment(a.donation_id, "charge-other", 5_000, 0, "ORGAB12C", 2026),
            Payment(c.donation_id, "charge-c", 5_000, 0, "SIP", 2026),
        ],
        confirmed=[confirmed.donation_id],
    )
    paid_b, paid_a, reused, repeat_b, replay, other_charge, paid_c = outcomes
    assert isinstance(paid_b, Pledge) and paid_b.receipt_no == "SIP-2026-0000002"
    assert isinstance(paid_a, Pledge) and paid_a.receipt_no == "ORGAB12C-2026-0000001"
    assert isinstance(reused, ChargeAlreadyCounted)  # charge-b paid b a moment before, in this batch
    assert repeat_b == paid_b  # a repeat within the batch: the same pledge, its one number
    assert isinstance(replay, NonceReplayed)
    assert isinstance(other_charge, ChargeAlreadyCounted)
    assert isinstance(paid_c, Pledge) and paid_c.receipt_no == "SIP-2026-0000003"
    for paid in (paid_a, paid_b, paid_c):
        assert donors.pledge(paid.donation_id) == paid
    assert donors.pledge(replayed.donation_id) == replayed  # untouched
    assert donors.pledge(confirmed.donation_id) == replace(before, status=PledgeStatus.CONFIRMED)
    # The refused charge's notification was spent, and the replayed one stays spent; a
    # nonce never sent is still free.
    assert not donors.remember(Nonce("nc", 6_000, 600_000))
    assert not donors.remember(Nonce("nb", 6_000, 600_000))
    assert donors.remember(Nonce("unused", 6_000, 600_000))


def test_a_batch_that_fails_half_way_writes_nothing(donors: DonorStore) -> None:
    pledge, holder, acknowledged = (make(donors, a_pledge()) for _ in range(3))
    acknowledged = mark_paid(donors, acknowledged.donation_id, "charge-0", 5_000, 0, "ORG2", 2026)
    # The number the payment is to take is in use already (as after a counter restored
    # from an older backup): its pledge's update fails after the nonce and the counter
    # were written (and before the confirmation would have been).
    with donors.engine.begin() as conn:
        conn.execute(
            update(t.pledges)
            .where(t.pledges.c.donation_id == holder.donation_id)
            .values(receipt_no="SIP-2026-0000001")
        )
    with pytest.raises(IntegrityError):
        donors.record_payments(
            [Payment(pledge.donation_id, "charge-1", 5_000, 0, "SIP", 2026, Nonce("n1", 5_000, 600_000))],
            confirmed=[acknowledged.donation_id],
        )
    assert donors.pledge(pledge.donation_id) == pledge
    assert donors.pledge(acknowledged.donation_id) == acknowledged  # not marked confirmed
    assert donors.remember(Nonce("n1", 5_000, 600_000))  # the nonce is not spent
    with donors.engine.begin() as conn:
        conn.execute(
            update(t.pledges).where(t.pledges.c.donation_id == holder.donation_id).values(receipt_no=None)
        )
    # Nor was the counter moved: the number is taken now, by the payment.
    assert mark_paid(donors, pledge.donation_id, "charge-1", 5_000, 0, "SIP", 2026).receipt_no == (
        "SIP-2026-0000001"
    )


def test_a_payment_for_a_pledge_the_store_does_not_have_fails_its_batch(donors: DonorStore) -> None:
    pledge = make(donors, a_pledge())
    with pytest.raises(LookupError, match="no pledge"):
        donors.record_payments(
            [
                Payment(pledge.donation_id, "charge-1", 5_000, 0, "SIP", 2026, Nonce("n1", 5_000, 600_000)),
                Payment("no-such-donation", "charge-2", 5_000, 0, "SIP", 2026),
            ]
        )
    assert donors.pledge(pledge.donation_id) == pledge
    assert donors.remember(Nonce("n1", 5_000, 600_000))
    assert mark_paid(donors, pledge.donation_id, "charge-1", 5_000, 0, "SIP", 2026).receipt_no == (
        "SIP-2026-0000001"
    )


def test_batches_from_several_writers_overlapping_in_any_order_take_each_number_once(
    donors: DonorStore,
) -> None:
    """As several API processes would: batches sharing pledges, in different orders, two
    organisations, each batch confirming pledges that other batches pay; none waits for
    another in a circle (PostgreSQL would fail one as a deadlock), and every pledge has
    one number."""
    pledges = [make(donors, a_pledge()) for _ in range(24)]
    orgs = {p.donation_id: ("SIP", "ORGAB12C")[i % 2] for i, p in enumerate(pledges)}
    failures: list[BaseException] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        order = rng.sample(pledges, len(pledges))
        try:
            for start in range(0, len(order), 6):
                donors.record_payments(
                    [
                        Payment(p.donation_id, f"charge-{p.donation_id}", 5_000, 0, orgs[p.donation_id], 2026)
                        for p in order[start : start + 6]
                    ],
                    confirmed=[p.donation_id for p in rng.sample(pledges, 6)],
                )
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    numbers = sorted(donors.pledge(p.donation_id).receipt_no or "" for p in pledges)  # type: ignore[union-attr]
    assert numbers == sorted(
        [f"ORGAB12C-2026-{i:07d}" for i in range(1, 13)] + [f"SIP-2026-{i:07d}" for i in range(1, 13)]
    )
