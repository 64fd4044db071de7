"""One contract suite for the ledger store, run on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses
import json

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from services.contracts.events import utc_now_ms
from services.ledger.adapters import tables as t
from services.ledger.adapters.migrate import alembic_config, upgrade
from services.ledger.adapters.store import LedgerStore
from services.ledger.domain.book import decide
from services.ledger.domain.chain import GENESIS_HASH, canonical_bytes, hashes_of
from services.ledger.domain.journal import JournalEntry
from services.ledger.domain.projector import apply_entry
from services.ledger.domain.view import LedgerView
from services.ledger.service.ports import Batch, CommittedRow, RecordRefused, StoreUnavailable
from services.platform.db import make_engine
from tests.fixtures import factories as f

pytestmark = pytest.mark.integration  # needs the PostgreSQL server


def commit(
    store: LedgerStore, view: LedgerView, events: list, offsets: dict | None = None
) -> list[CommittedRow]:  # type: ignore[type-arg]
    batch = Batch(group_id="g", recorded_at=utc_now_ms(), offsets=offsets or {})
    for i, event in enumerate(events):
        entry = decide(event, view)
        apply_entry(entry, view)
        batch.entries.append((entry, f"topic/0/{i}"))
    records = store.commit_batch(batch, view)
    view.clear_dirty()
    return records


def test_a_batch_is_stored_with_its_projections_and_offsets(store: LedgerStore) -> None:
    view = LedgerView()
    records = commit(store, view, [*f.opened_project("p1"), f.confirmed("p1", 5000, 30)], {("in", 0): 4})
    assert [r[0] for r in records] == [1, 2, 3, 4]
    assert store.stored_offsets("g", [("in", 0), ("in", 1)]) == {("in", 0): 4}
    loaded = store.load_projects()["p1"]
    assert (loaded.status, loaded.net_fen, loaded.fund_fen, loaded.last_entry_seq) == (
        "fundraising",
        4970,
        4970,
        4,
    )
    assert loaded.plan["name"] == "项目 p1"
    with store.engine.connect() as conn:
        legs = conn.execute(
            select(t.postings.c.account, t.postings.c.amount).where(t.postings.c.seq == 4)
        ).all()
    # gross in through clearing, the fee out to fees, the net to the fund
    assert sorted(legs) == [
        ("clearing:sandbox", -4970),
        ("clearing:sandbox", -30),
        ("fees:sandbox", 30),
        ("project:p1:fund", 4970),
    ]


def test_known_entry_ids_and_prefetch(store: LedgerStore) -> None:
    view = LedgerView()
    gift = f.confirmed("p1", donation_id="d1")
    commit(store, view, [*f.opened_project("p1"), gift])
    assert store.known_entry_ids([gift.event_id, "00000000-0000-0000-0000-000000000000"]) == {gift.event_id}
    fresh = LedgerView()
    store.prefetch(fresh, {"d1", "nope"}, set())
    assert set(fresh.donations) == {"d1"} and fresh.donations["d1"].gross_fen == 5000


def test_the_journal_refuses_update_and_delete_even_in_raw_sql(store: LedgerStore) -> None:
    commit(store, LedgerView(), [*f.opened_project("p1"), f.confirmed("p1")])
    for statement in (
        "UPDATE journal SET reason = 'edited' WHERE seq = 1",
        "DELETE FROM journal WHERE seq = 1",
        "UPDATE postings SET amount = 0",
        "DELETE FROM postings",
        "UPDATE merkle_leaves SET leaf_hash = 'x'",
        "DELETE FROM merkle_leaves",
    ):
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(text(statement))
    with store.engine.connect() as conn:
        assert conn.scalar(text("SELECT count(*) FROM journal")) == 4
        assert conn.scalar(text("SELECT count(*) FROM postings")) == 4


def test_a_failing_batch_leaves_nothing_behind(store: LedgerStore) -> None:
    view = LedgerView()
    first = f.opened_project("p1")
    commit(store, view, first, {("in", 0): 3})
    duplicate = JournalEntry(
        entry_id=first[0].event_id,
        kind="ProjectRegistered",
        project_id="p1",
        effective_at=utc_now_ms(),
        decision="recorded",
        reason="",
        body={},
    )
    fine = decide(f.confirmed("p1"), view)
    batch = Batch(group_id="g", recorded_at=utc_now_ms(), offsets={("in", 0): 99})
    batch.entries = [(fine, "in/0/3"), (duplicate, "in/0/4")]
    with pytest.raises(RecordRefused) as refused:
        store.commit_batch(batch, view)
    assert isinstance(refused.value.__cause__, IntegrityError)
    assert store.stored_offsets("g", [("in", 0)]) == {("in", 0): 3}
    assert store.known_entry_ids([fine.entry_id]) == set()
    with store.engine.connect() as conn:
        assert conn.scalar(select(t.chain_head.c.seq)) == 3


def test_entries_are_hash_chained_across_batches(store: LedgerStore) -> None:
    view = LedgerView()
    commit(store, view, f.opened_project("p1"))
    gift = f.confirmed("p1")
    commit(store, view, [gift, f.offline("p1")])
    with store.engine.connect() as conn:
        rows = conn.execute(select(t.journal).order_by(t.journal.c.seq)).mappings().all()
        leaves = dict(conn.execute(select(t.merkle_leaves.c.seq, t.merkle_leaves.c.leaf_hash)).all())
    prev = GENESIS_HASH
    for row in rows:
        canonical = row["canonical"].encode("utf-8")
        assert row["prev_hash"] == prev
        assert (row["entry_hash"], leaves[row["seq"]]) == hashes_of(prev, canonical)
        record = json.loads(canonical)
        assert (record["seq"], record["entry_id"], record["kind"]) == (
            row["seq"],
            row["entry_id"],
            row["kind"],
        )
        assert canonical == canonical_bytes(record)  # stored in canonical form
        prev = row["entry_hash"]
    assert len(rows) == 5
    gift_record = json.loads(rows[3]["canonical"])
    assert gift_record["entry_id"] == gift.event_id and "display_name" not in gift_record["body"]


def test_migrating_twice_is_harmless_and_reaches_the_head_revision(store: LedgerStore) -> None:
    store.migrate()
    head = ScriptDirectory.from_config(alembic_config(store.engine)).get_current_head()
    with store.engine.connect() as conn:
        assert conn.scalar(text("SELECT version_num FROM alembic_version")) == head == "0011"


def test_a_record_the_database_refuses_is_told_apart_from_a_database_that_is_away(
    store: LedgerStore,
) -> None:
    view = LedgerView()
    gift = f.confirmed("p1", donation_id="d1")
    commit(store, view, [*f.opened_project("p1"), gift])
    again = LedgerView(projects=store.load_projects())
    # The same entry once more (the batch loop's dedup bypassed): the unique constraint.
    with pytest.raises(RecordRefused, match=r"IntegrityError|UniqueViolation"):
        commit(store, again, [gift])
    if store.engine.dialect.name == "postgresql":
        # A value longer than its column: PostgreSQL refuses it, as it did braced UUIDs.
        long_id = dataclasses.replace(f.confirmed("p1"), event_id="{" + gift.event_id + "}")
        with pytest.raises(RecordRefused, match="StringDataRightTruncation"):
            commit(store, LedgerView(projects=store.load_projects()), [long_id])
    away = LedgerStore(create_engine("postgresql+psycopg://nobody:x@127.0.0.1:1/none"))
    with pytest.raises(StoreUnavailable, match="OperationalError"):
        away.load_projects()


def test_feed_items_wait_in_the_outbox_until_the_watermark_passes_them(store: LedgerStore) -> None:
    view = LedgerView()
    commit(store, view, f.opened_project("p1"))
    gifts = [f.confirmed("p1", 100 * (i + 1), 0) for i in range(3)]
    batch = Batch(group_id="g", recorded_at=utc_now_ms())
    for gift in gifts:
        entry = decide(gift, view)
        apply_entry(entry, view)
        batch.entries.append((entry, "in/0/0"))
    moment = utc_now_ms()
    first, third = {"shown_name": "王**", "occurred_at": moment}, {"shown_name": "", "occurred_at": moment}
    batch.feed = {gifts[0].event_id: first, gifts[2].event_id: third}
    committed = store.commit_batch(batch, view)
    assert [(r[0], r[1], r[3], r[4]) for r in committed] == [
        (4 + i, g.event_id, "DonationConfirmed", "posted") for i, g in enumerate(gifts)
    ]
    assert store.output_watermark("journal") == 0
    rows, feed = store.committed_after(2, limit=10)
    assert [r[0] for r in rows] == [3, 4, 5, 6] and rows[1:] == committed
    assert feed == {4: first, 6: third}  # the outbox keeps them by seq, times and all
    store.store_watermark("journal", 5)
    store.store_watermark("journal", 4)  # never back
    assert store.output_watermark("journal") == 5
    rows, feed = store.committed_after(5, limit=10)
    assert [r[0] for r in rows] == [6] and list(feed) == [6]
    with store.engine.connect() as conn:  # published items leave the outbox
        assert conn.scalars(select(t.feed_outbox.c.seq)).all() == [6]


def test_a_journal_written_before_the_relay_counts_as_published(db_url: str) -> None:
    """Migration 0003 starts the watermarks at what the database holds: the ledger that
    wrote those entries published their outputs (at most once, as it then did)."""
    engine = make_engine(db_url)
    try:
        upgrade(engine, "0002")
        old = LedgerStore(engine)
        with engine.begin() as conn:  # what a 0002 ledger wrote: three entries
            conn.execute(t.chain_head.update().values(seq=3))
            conn.execute(
                t.tree_heads.insert().values(tree_size=2, root_hash="0" * 64, timestamp_ms=1, signature="s")
            )
        upgrade(engine)
        assert old.output_watermark("journal") == 3
        assert old.output_watermark("tree-heads") == 2
    finally:
        engine.dispose()
