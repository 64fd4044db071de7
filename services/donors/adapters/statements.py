"""The statements of a payment notification's path, built once.

SQLAlchemy builds a statement written inline anew on every call and computes its cache
key each time (about 0.3 ms of CPU a statement here, more than SQLite takes to run it).
A statement built once with bound parameters keeps its cache key, so a notification,
which runs about eight of them, costs the API roughly half the CPU in the store. The
rarer paths (pledges, erasure, reconciliation) keep their statements inline.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, Update, bindparam, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from services.donors.adapters import tables as t
from services.donors.domain.pledges import PledgeStatus

PAID_FIELDS = ("status", "provider_charge_id", "paid_at_ms", "fee_fen", "receipt_no", "failure_reason")

# A pledge by one of its unique columns: bind `value`.
PLEDGE_BY: dict[str, Select[Any]] = {
    column: select(t.pledges).where(t.pledges.c[column] == bindparam("value"))
    for column in ("donation_id", "out_trade_no", "receipt_no")
}
# A batch's pledges with their row locks, taken in one order (donation id) so that two
# processes' batches never wait on each other in a circle (PostgreSQL; SQLite's BEGIN
# IMMEDIATE serialises already): bind `donation_ids` (a list).
PLEDGES_FOR_UPDATE = (
    select(t.pledges)
    .where(t.pledges.c.donation_id.in_(bindparam("donation_ids", expanding=True)))
    .order_by(t.pledges.c.donation_id)
    .with_for_update()
)
# Which donations these provider charge ids confirmed: bind `charge_ids` (a list).
CHARGES_COUNTED = select(t.pledges.c.provider_charge_id, t.pledges.c.donation_id).where(
    t.pledges.c.provider_charge_id.in_(bindparam("charge_ids", expanding=True))
)
# The next `taken` receipt numbers of an organisation's year; returns the last of them.
# Bind `counter_org`, `counter_year`, `taken` (an UPDATE's bound names must differ from
# its table's columns).
BUMP_RECEIPT_COUNTER = (
    update(t.receipt_counters)
    .where(
        t.receipt_counters.c.org_code == bindparam("counter_org"),
        t.receipt_counters.c.year == bindparam("counter_year"),
    )
    .values(last_no=t.receipt_counters.c.last_no + bindparam("taken"))
    .returning(t.receipt_counters.c.last_no)
)
# A pledge paid: bind `paid_donation_id` and each of PAID_FIELDS (one set per pledge).
MARK_PAID: Update = (
    update(t.pledges)
    .where(t.pledges.c.donation_id == bindparam("paid_donation_id"))
    .values({field: bindparam(field) for field in PAID_FIELDS})
)
# Gifts the broker acknowledged: bind `confirmed_ids` (a list).
MARK_CONFIRMED: Update = (
    update(t.pledges)
    .where(
        t.pledges.c.donation_id.in_(bindparam("confirmed_ids", expanding=True)),
        t.pledges.c.status == PledgeStatus.PAID,
    )
    .values(status=PledgeStatus.CONFIRMED)
)
# A donor's personal data: bind `donor_ref`.
DONOR_DATA = select(t.donor_data).where(t.donor_data.c.donor_ref == bindparam("donor_ref"))


def _record_nonce(insert: Any) -> Any:
    # A row from outside the window (not yet forgotten) is taken over; one inside it stays,
    # and the statement changes nothing: a replay. The unique index settles a race.
    # RETURNING, not rowcount: psycopg reports no row count for this statement.
    # Bind `nonce`, `seen_at_ms` and `window_start_ms` (seen_at_ms minus the window).
    table = t.notification_nonces
    statement = insert(table).values(nonce=bindparam("nonce"), seen_at_ms=bindparam("seen_at_ms"))
    return statement.on_conflict_do_update(
        index_elements=[table.c.nonce],
        set_={"seen_at_ms": statement.excluded.seen_at_ms},
        where=table.c.seen_at_ms <= bindparam("window_start_ms"),
    ).returning(table.c.nonce)


# INSERT … ON CONFLICT, by dialect name (SQLite and PostgreSQL spell it alike).
RECORD_NONCE = {"postgresql": _record_nonce(postgresql_insert), "sqlite": _record_nonce(sqlite_insert)}
