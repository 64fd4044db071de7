"""The ledger's storage adapter: journal, projections and consumer offsets.

One `commit_batch` call is one database transaction holding a batch's journal
entries, the projection rows they changed and the next offset of every
partition the batch read, so a crash leaves either all of it or none of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from services.ledger import tables as t
from services.ledger.domain.chain import canonical_bytes, entry_hashes, entry_record
from services.ledger.domain.journal import JournalEntry
from services.ledger.domain.state import DisbursementRecord, DonationRecord, ProjectTotals
from services.ledger.domain.view import LedgerView
from services.ledger.migrate import upgrade

TopicPartition = tuple[str, int]
_JSON_PROJECT_FIELDS = ("plan", "by_channel")
_JSON_DISBURSEMENT_FIELDS = ("approvers", "evidence")


@dataclass
class Batch:
    """What one committed batch consists of."""

    group_id: str
    recorded_at: datetime
    entries: list[tuple[JournalEntry, str]] = field(default_factory=list)  # (entry, source)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)  # next offset to read


class LedgerStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._insert: Any = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert

    def migrate(self) -> None:
        upgrade(self.engine)

    # --- reads the consumer needs -------------------------------------------------

    def load_projects(self) -> dict[str, ProjectTotals]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.project_totals)).mappings().all()
        return {r["project_id"]: project_from_row(r) for r in rows}

    def known_entry_ids(self, entry_ids: Iterable[str]) -> set[str]:
        ids = list(entry_ids)
        if not ids:
            return set()
        with self.engine.connect() as conn:
            return set(conn.scalars(select(t.journal.c.entry_id).where(t.journal.c.entry_id.in_(ids))))

    def prefetch(self, view: LedgerView, donation_ids: set[str], disbursement_ids: set[str]) -> None:
        """Load the records a batch's events refer to, unless the view holds them already."""
        missing_donations = [d for d in donation_ids if d not in view.donations]
        missing_disbursements = [d for d in disbursement_ids if d not in view.disbursements]
        with self.engine.connect() as conn:
            if missing_donations:
                rows = conn.execute(
                    select(t.donations).where(t.donations.c.donation_id.in_(missing_donations))
                ).mappings()
                for r in rows:
                    view.donations[r["donation_id"]] = DonationRecord(**r)
            if missing_disbursements:
                rows = conn.execute(
                    select(t.disbursements).where(
                        t.disbursements.c.disbursement_id.in_(missing_disbursements)
                    )
                ).mappings()
                for r in rows:
                    view.disbursements[r["disbursement_id"]] = disbursement_from_row(r)

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

    def commit_batch(self, batch: Batch, view: LedgerView) -> list[dict[str, Any]]:
        """Append the batch's entries, upsert what they changed, store offsets: atomically.

        Returns the canonical records of the appended entries (with their seq).
        """
        with self.engine.begin() as conn:
            records = self._append(conn, batch, view) if batch.entries else []
            self.write_projections(conn, view)
            self._store_offsets(conn, batch)
        return records

    def _append(self, conn: Connection, batch: Batch, view: LedgerView) -> list[dict[str, Any]]:
        # Serialises writers (several ledger instances share one chain); SQLite
        # already holds its write lock from BEGIN IMMEDIATE.
        head = conn.execute(select(t.chain_head).where(t.chain_head.c.id == 1).with_for_update()).one()
        seq, prev = head.seq, head.entry_hash
        journal_rows: list[dict[str, Any]] = []
        posting_rows: list[dict[str, Any]] = []
        leaf_rows: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        for entry, source in batch.entries:
            seq += 1
            record = entry_record(seq, entry, batch.recorded_at)
            entry_hash, leaf = entry_hashes(prev, record)
            leaf_rows.append({"seq": seq, "leaf_hash": leaf})
            journal_rows.append(
                {
                    "seq": seq,
                    "entry_id": entry.entry_id,
                    "kind": entry.kind,
                    "project_id": entry.project_id,
                    "effective_at": entry.effective_at,
                    "recorded_at": batch.recorded_at,
                    "decision": entry.decision,
                    "reason": entry.reason,
                    "body": canonical_bytes(entry.body).decode("utf-8"),
                    "source": source,
                    "prev_hash": prev,
                    "entry_hash": entry_hash,
                }
            )
            posting_rows.extend(
                {
                    "seq": seq,
                    "leg": leg,
                    "account": p.account,
                    "currency": p.amount.currency,
                    "amount": p.amount.minor,
                }
                for leg, p in enumerate(entry.postings)
            )
            records.append(record)
            prev = entry_hash
            project = view.projects.get(entry.project_id)
            if project is not None:
                project.last_entry_seq = seq  # how far this projection is up to date
                view.dirty_projects.add(entry.project_id)
        conn.execute(t.journal.insert(), journal_rows)
        conn.execute(t.merkle_leaves.insert(), leaf_rows)
        if posting_rows:
            conn.execute(t.postings.insert(), posting_rows)
        conn.execute(update(t.chain_head).where(t.chain_head.c.id == 1).values(seq=seq, entry_hash=prev))
        return records

    def _upsert(self, conn: Connection, table: Any, key: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        stmt = self._insert(table)
        columns = {c.name: stmt.excluded[c.name] for c in table.columns if c.name != key}
        conn.execute(stmt.on_conflict_do_update(index_elements=[key], set_=columns), rows)

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

    def _store_offsets(self, conn: Connection, batch: Batch) -> None:
        if not batch.offsets:
            return
        stmt = self._insert(t.consumer_offsets)
        rows = [
            {"group_id": batch.group_id, "topic": topic, "partition": part, "next_offset": off}
            for (topic, part), off in sorted(batch.offsets.items())
        ]
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["group_id", "topic", "partition"],
                set_={"next_offset": stmt.excluded.next_offset},
            ),
            rows,
        )


def _plain_row(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


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
