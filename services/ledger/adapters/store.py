"""The ledger's storage adapter: journal, projections and consumer offsets.

One `commit_batch` call is one database transaction holding a batch's journal
entries, the projection rows they changed and the next offset of every
partition the batch read, so a crash leaves either all of it or none of it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import orjson
from sqlalchemy import Column, ColumnElement, Engine, String, Table, any_, bindparam, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect

from services.contracts.events import field_names
from services.ledger.adapters import tables as t
from services.ledger.adapters.migrate import upgrade
from services.ledger.domain.chain import canonical_bytes, entry_record, hashes_of, iso_ms
from services.ledger.domain.state import (
    DisbursementRecord,
    DonationRecord,
    ProjectTotals,
    SuspenseResolution,
)
from services.ledger.domain.suspense import other_project
from services.ledger.domain.view import LedgerView
from services.ledger.service.ports import (
    JOURNAL_STREAM,
    Batch,
    CommittedRow,
    RecordRefused,
    StoreUnavailable,
    TopicPartition,
)

JOURNAL_COLUMNS = (
    "seq",
    "entry_id",
    "kind",
    "project_id",
    "effective_at",
    "recorded_at",
    "decision",
    "reason",
    "canonical",
    "source",
    "prev_hash",
    "entry_hash",
)
_JSON_PROJECT_FIELDS = ("plan", "by_channel")
_F = TypeVar("_F", bound=Callable[..., Any])


def translated(method: _F) -> _F:
    """Turn the database's errors into the two the batch loop tells apart.

    Integrity and data errors (a unique or check constraint, a value too long or
    out of range for its column) are tied to the records: `RecordRefused`, and the
    batch loop finds the one record and dead-letters it. Everything the database
    says about itself (connection lost, locked, shutting down, out of space) is
    `StoreUnavailable`: retried with back-off, never dead-lettered. The message
    is the driver's own, without the statement and its parameters.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (sa_exc.IntegrityError, sa_exc.DataError) as exc:
            raise RecordRefused(_driver_message(exc)) from exc
        except (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError) as exc:
            raise StoreUnavailable(_driver_message(exc)) from exc
        except sa_exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise StoreUnavailable(_driver_message(exc)) from exc
            raise

    return wrapper  # type: ignore[return-value]


def _driver_message(exc: Exception) -> str:
    orig = getattr(exc, "orig", None) or exc
    first_line = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {first_line}"


_JSON_DISBURSEMENT_FIELDS = ("approvers", "evidence")


class LedgerStore:
    def __init__(self, engine: Engine, guard: Callable[[Connection], None] | None = None) -> None:
        self.engine = engine
        # Run inside every batch's transaction before it commits (the writer lease's check).
        self.guard = guard
        self._writers: dict[str, _RowWriter] = {}
        # Built once: a batch of a few records spent more on building these
        # statements than on running them.
        self._known_entries = select(t.journal.c.entry_id).where(self._one_of(t.journal.c.entry_id))
        self._donations_by_id = select(t.donations).where(self._one_of(t.donations.c.donation_id))
        self._disbursements_by_id = select(t.disbursements).where(
            self._one_of(t.disbursements.c.disbursement_id)
        )
        self._resolutions_by_id = select(t.suspense_resolutions).where(
            self._one_of(t.suspense_resolutions.c.resolution_id)
        )

    def migrate(self) -> None:
        upgrade(self.engine)

    # --- reads the consumer needs -------------------------------------------------

    @translated
    def load_projects(self) -> dict[str, ProjectTotals]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.project_totals)).mappings().all()
        return {r["project_id"]: project_from_row(r) for r in rows}

    @translated
    def known_entry_ids(self, entry_ids: Iterable[str]) -> set[str]:
        ids = list(entry_ids)
        if not ids:
            return set()
        with self.engine.connect() as conn:
            return set(conn.scalars(self._known_entries, {"ids": ids}))

    @translated
    def recorded_entries(self, entry_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The canonical records of the journal entries with these ids (for duplicates only)."""
        ids = list(entry_ids)
        if not ids:
            return {}
        query = select(t.journal.c.entry_id, t.journal.c.canonical).where(self._one_of(t.journal.c.entry_id))
        with self.engine.connect() as conn:
            return {
                entry_id: json.loads(canonical) for entry_id, canonical in conn.execute(query, {"ids": ids})
            }

    def _one_of(self, column: Column[str]) -> ColumnElement[bool]:
        """``column IN (:ids)``, the list given at execution; on PostgreSQL as
        ``= ANY(:ids)``, one array parameter instead of hundreds."""
        if self.engine.dialect.name == "postgresql":
            return column == any_(bindparam("ids", type_=postgresql.ARRAY(column.type)))
        return column.in_(bindparam("ids", expanding=True))

    @translated
    def prefetch(
        self,
        view: LedgerView,
        donation_ids: set[str],
        disbursement_ids: set[str],
        resolution_ids: frozenset[str] = frozenset(),
    ) -> None:
        """Load the records a batch's events refer to, unless the view holds them already
        (a suspense resolution's gift too: its approval refunds it)."""
        missing_resolutions = [r for r in resolution_ids if r not in view.resolutions]
        if missing_resolutions:
            with self.engine.connect() as conn:
                rows = conn.execute(self._resolutions_by_id, {"ids": missing_resolutions}).mappings()
                for r in rows:
                    view.resolutions[r["resolution_id"]] = SuspenseResolution(**r)
        donation_ids = donation_ids | {
            r.donation_id for r in view.resolutions.values() if r.donation_id is not None
        }
        missing_donations = [d for d in donation_ids if d not in view.donations]
        missing_disbursements = [d for d in disbursement_ids if d not in view.disbursements]
        if not missing_donations and not missing_disbursements:
            return
        with self.engine.connect() as conn:
            if missing_donations:
                rows = conn.execute(self._donations_by_id, {"ids": missing_donations}).mappings()
                for r in rows:
                    view.donations[r["donation_id"]] = DonationRecord(**r)
            if missing_disbursements:
                rows = conn.execute(self._disbursements_by_id, {"ids": missing_disbursements}).mappings()
                for r in rows:
                    view.disbursements[r["disbursement_id"]] = disbursement_from_row(r)

    @translated
    def stored_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]:
        wanted = set(partitions)
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.consumer_offsets).where(t.consumer_offsets.c.group_id == group_id)
            ).mappings()
            found = {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
        return {tp: off for tp, off in found.items() if tp in wanted}

    # --- the write ---------------------------------------------------------------

    @translated
    def commit_batch(self, batch: Batch, view: LedgerView) -> list[CommittedRow]:
        """Append the batch's entries (and its gifts' feed items to the outbox), upsert what
        they changed, store the offsets and the outputs watermark: atomically.

        Returns the appended entries as the relay publishes them.
        """
        with self.engine.begin() as conn:
            if self.guard is not None:
                self.guard(conn)
            committed = self._append(conn, batch, view) if batch.entries else []
            self.write_projections(conn, view)
            self._store_offsets(conn, batch)
            if batch.acknowledged is not None:
                write_watermark(conn, JOURNAL_STREAM, batch.acknowledged)
        return committed

    @translated
    def output_watermark(self, stream: str) -> int:
        with self.engine.connect() as conn:
            return read_watermark(conn, stream)

    @translated
    def store_watermark(self, stream: str, seq: int) -> None:
        with self.engine.begin() as conn:
            write_watermark(conn, stream, seq)

    @translated
    def committed_after(self, seq: int, limit: int) -> tuple[list[CommittedRow], dict[int, dict[str, Any]]]:
        j = t.journal
        query = (
            select(
                j.c.seq,
                j.c.entry_id,
                j.c.project_id,
                j.c.kind,
                j.c.decision,
                j.c.reason,
                j.c.canonical,
                j.c.prev_hash,
                j.c.entry_hash,
                j.c.source,
            )
            .where(j.c.seq > seq)
            .order_by(j.c.seq)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = [tuple(r) for r in conn.execute(query)]
            if not rows:
                return [], {}
            outbox = conn.execute(
                select(t.feed_outbox).where(t.feed_outbox.c.seq.between(rows[0][0], rows[-1][0]))
            ).all()
        return rows, {r.seq: feed_fields_from_json(r.fields) for r in outbox}

    def _append(self, conn: Connection, batch: Batch, view: LedgerView) -> list[CommittedRow]:
        # Serialises writers (several ledger instances share one chain); SQLite
        # already holds its write lock from BEGIN IMMEDIATE.
        head = conn.execute(select(t.chain_head).where(t.chain_head.c.id == 1).with_for_update()).one()
        seq, prev = head.seq, head.entry_hash
        journal, leaves, postings = self._rows(t.journal), self._rows(t.merkle_leaves), self._rows(t.postings)
        # Rows are built as tuples in column order (checked by write_tuples), the
        # timestamps bound here: a dict per row, then a tuple of it, was a tenth of
        # the batch loop on SQLite. recorded_at is the same for the whole batch.
        db_time = journal.bind("effective_at")
        recorded_at = db_time(batch.recorded_at)
        recorded_iso = iso_ms(batch.recorded_at)
        journal_rows: list[tuple[Any, ...]] = []
        posting_rows: list[tuple[Any, ...]] = []
        leaf_rows: list[tuple[Any, ...]] = []
        outbox_rows: list[tuple[Any, ...]] = []
        committed: list[CommittedRow] = []
        feed = batch.feed
        for entry, source in batch.entries:
            seq += 1
            record = entry_record(seq, entry, recorded_iso)
            canonical = canonical_bytes(record)
            text = canonical.decode("utf-8")
            entry_hash, leaf = hashes_of(prev, canonical)
            leaf_rows.append((seq, leaf))
            journal_rows.append(
                (
                    seq,
                    entry.entry_id,
                    entry.kind,
                    entry.project_id,
                    db_time(entry.effective_at),
                    recorded_at,
                    entry.decision,
                    entry.reason,
                    text,
                    source,
                    prev,
                    entry_hash,
                )
            )
            posting_rows.extend(
                (seq, leg, p.account, p.amount.currency, p.amount.minor)
                for leg, p in enumerate(entry.postings)
            )
            committed.append(
                (
                    seq,
                    entry.entry_id,
                    entry.project_id,
                    entry.kind,
                    entry.decision,
                    entry.reason,
                    text,
                    prev,
                    entry_hash,
                    source,
                )
            )
            fields = feed.get(entry.entry_id)
            if fields is not None:
                outbox_rows.append((seq, feed_fields_json(fields)))
            prev = entry_hash
            for project_id in (entry.project_id, other_project(entry.kind, entry.decision, entry.body)):
                project = view.projects.get(project_id or "")
                if project is not None:
                    project.last_entry_seq = seq  # how far this projection is up to date
                    view.dirty_projects.add(project.project_id)
        journal.write_tuples(conn, JOURNAL_COLUMNS, journal_rows, bound=("effective_at", "recorded_at"))
        leaves.write_tuples(conn, ("seq", "leaf_hash"), leaf_rows)
        postings.write_tuples(conn, ("seq", "leg", "account", "currency", "amount"), posting_rows)
        self._rows(t.feed_outbox).write_tuples(conn, ("seq", "fields"), outbox_rows)
        conn.execute(update(t.chain_head).where(t.chain_head.c.id == 1).values(seq=seq, entry_hash=prev))
        return committed

    def _rows(self, table: Table, conflict_key: tuple[str, ...] = ()) -> _RowWriter:
        writer = self._writers.get(table.name)
        if writer is None:
            writer = self._writers[table.name] = _RowWriter.for_table(
                table, self.engine.dialect, conflict_key
            )
        return writer

    def _upsert(self, conn: Connection, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
        self._rows(table, (key,)).write(conn, rows)

    def write_projections(self, conn: Connection, view: LedgerView) -> None:
        """Upsert the projection rows the view marks dirty."""
        self._upsert(
            conn,
            t.project_totals,
            "project_id",
            [project_to_row(view.projects[p]) for p in sorted(view.dirty_projects) if p in view.projects],
        )
        self._upsert(
            conn,
            t.donations,
            "donation_id",
            [_plain_row(view.donations[d]) for d in sorted(view.dirty_donations)],
        )
        self._upsert(
            conn,
            t.disbursements,
            "disbursement_id",
            [disbursement_to_row(view.disbursements[d]) for d in sorted(view.dirty_disbursements)],
        )
        self._upsert(
            conn,
            t.suspense_resolutions,
            "resolution_id",
            [_plain_row(view.resolutions[r]) for r in sorted(view.dirty_resolutions)],
        )

    def _store_offsets(self, conn: Connection, batch: Batch) -> None:
        if not batch.offsets:
            return
        rows = [
            {"group_id": batch.group_id, "topic": topic, "partition": part, "next_offset": off}
            for (topic, part), off in sorted(batch.offsets.items())
        ]
        self._rows(t.consumer_offsets, ("group_id", "topic", "partition")).write(conn, rows)


@dataclass(frozen=True)
class _RowWriter:
    """Writes many rows of one table with one statement (optionally as an upsert).

    SQLAlchemy's executemany makes a Python pass over every parameter of every
    row, and psycopg then sends one INSERT per row; at a few thousand rows per
    batch that was most of the commit. Here SQLite gets a plain executemany of
    tuples (the driver loops in C) and PostgreSQL one INSERT ... SELECT FROM
    unnest(one array per column). Same rows, same transaction, same conflict
    handling; values still go through each column type's bind processor, so
    they are stored exactly as SQLAlchemy would store them.
    """

    sql: str
    columns: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    by_column: bool  # PostgreSQL: one parameter per column, an array of all rows' values

    @classmethod
    def for_table(cls, table: Table, dialect: Dialect, conflict_key: tuple[str, ...] = ()) -> _RowWriter:
        quote = dialect.identifier_preparer.quote
        columns = tuple(c.name for c in table.columns)
        names = ", ".join(quote(c) for c in columns)
        by_column = dialect.name == "postgresql"
        if by_column:
            arrays = ", ".join(f"%b::{_array_element_type(c, dialect)}[]" for c in table.columns)
            sql = f"INSERT INTO {quote(table.name)} ({names}) SELECT * FROM unnest({arrays})"
        else:
            sql = f"INSERT INTO {quote(table.name)} ({names}) VALUES ({', '.join('?' for _ in columns)})"
        if conflict_key:
            updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in columns if c not in conflict_key)
            sql += f" ON CONFLICT ({', '.join(quote(c) for c in conflict_key)}) DO UPDATE SET {updates}"
        processors = tuple(c.type.dialect_impl(dialect).bind_processor(dialect) for c in table.columns)
        return cls(sql, columns, processors, by_column)

    def write(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        pairs = list(zip(self.columns, self.processors, strict=True))
        self._execute(conn, [tuple([row[c] if p is None else p(row[c]) for c, p in pairs]) for row in rows])

    def bind(self, column: str) -> Callable[[Any], Any]:
        """The column type's bind processor (what SQLAlchemy would store), or identity."""
        processor = self.processors[self.columns.index(column)]
        return processor if processor is not None else _identity

    def write_tuples(
        self,
        conn: Connection,
        columns: tuple[str, ...],
        rows: list[tuple[Any, ...]],
        bound: tuple[str, ...] = (),
    ) -> None:
        """Write rows given as tuples in `columns` order, the `bound` columns already
        passed through `bind`. Refuses a column order or binding that does not
        match the table, so a changed table cannot be written wrongly."""
        if columns != self.columns:
            raise ValueError(f"rows are {columns}, the table's columns are {self.columns}")
        unbound = [
            c for c, p in zip(self.columns, self.processors, strict=True) if p is not None and c not in bound
        ]
        if unbound:
            raise ValueError(f"columns {unbound} need their bind processor; pass them bound")
        if rows:
            self._execute(conn, rows)

    def _execute(self, conn: Connection, values: list[tuple[Any, ...]]) -> None:
        if self.by_column:
            conn.exec_driver_sql(self.sql, tuple(list(column) for column in zip(*values, strict=True)))
        else:
            conn.exec_driver_sql(self.sql, values)


def _array_element_type(column: Column[Any], dialect: Dialect) -> str:
    """The type a column's array is cast to: a bounded string as an unbounded one.

    An explicit cast to varchar(n) cuts a longer value short without a word; the
    INSERT's own assignment to the varchar(n) column refuses it instead, which is
    what must happen to a value that does not fit (it becomes a dead letter).
    """
    if isinstance(column.type, String) and column.type.length is not None:
        return String().compile(dialect=dialect)
    return column.type.compile(dialect=dialect)


def read_watermark(conn: Connection, stream: str) -> int:
    """How far the broker acknowledged an output stream (0: nothing yet)."""
    marks = t.output_watermarks
    return int(conn.scalar(select(marks.c.seq).where(marks.c.stream == stream)) or 0)


def write_watermark(conn: Connection, stream: str, seq: int) -> None:
    """Move a stream's watermark forward, never back. Feed items published up to it
    leave the outbox: their personal data is kept no longer than needed."""
    marks = t.output_watermarks
    moved = conn.execute(update(marks).where(marks.c.stream == stream, marks.c.seq < seq).values(seq=seq))
    if moved.rowcount == 0 and conn.scalar(select(marks.c.seq).where(marks.c.stream == stream)) is None:
        conn.execute(marks.insert().values(stream=stream, seq=seq))
    if stream == JOURNAL_STREAM:
        conn.execute(t.feed_outbox.delete().where(t.feed_outbox.c.seq <= seq))


def feed_fields_json(fields: dict[str, Any]) -> str:
    return orjson.dumps(fields).decode("utf-8")


def feed_fields_from_json(text: str) -> dict[str, Any]:
    fields: dict[str, Any] = orjson.loads(text)
    fields["occurred_at"] = datetime.fromisoformat(fields["occurred_at"])
    return fields


def _identity(value: Any) -> Any:
    return value


def _plain_row(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in field_names(type(obj))}


def project_to_row(p: ProjectTotals) -> dict[str, Any]:
    row = _plain_row(p)
    for name in _JSON_PROJECT_FIELDS:
        row[name] = json.dumps(row[name], ensure_ascii=False, sort_keys=True)
    return row


def project_from_row(row: Any) -> ProjectTotals:
    values = dict(row)
    for name in _JSON_PROJECT_FIELDS:
        values[name] = json.loads(values[name])
    return ProjectTotals(**values)


def disbursement_to_row(d: DisbursementRecord) -> dict[str, Any]:
    row = _plain_row(d)
    for name in _JSON_DISBURSEMENT_FIELDS:
        row[name] = json.dumps(row[name])
    return row


def disbursement_from_row(row: Any) -> DisbursementRecord:
    values = dict(row)
    for name in _JSON_DISBURSEMENT_FIELDS:
        values[name] = json.loads(values[name])
    return DisbursementRecord(**values)
