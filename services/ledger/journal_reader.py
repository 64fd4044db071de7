"""Streams the stored journal back in order, as canonical records and entries.

verify, rebuild and receipts all read the journal through here, so they agree
on how a stored row becomes the record that was hashed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select

from services.ledger import tables as t
from services.ledger.domain.chain import iso_ms
from services.ledger.domain.journal import JournalEntry, Posting, UnbalancedEntry
from services.ledger.domain.money import Money

CHUNK = 20_000


@dataclass(slots=True)
class StoredEntry:
    seq: int
    record: dict[str, Any]  # exactly what was hashed
    entry: JournalEntry | None  # None when the stored postings do not balance
    problem: str  # why entry is None
    prev_hash: str
    entry_hash: str
    leaf_hash: str | None


def record_of(row: Any, legs: list[list[Any]]) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "entry_id": row.entry_id,
        "kind": row.kind,
        "project_id": row.project_id,
        "effective_at": iso_ms(row.effective_at),
        "recorded_at": iso_ms(row.recorded_at),
        "decision": row.decision,
        "reason": row.reason,
        "body": json.loads(row.body),
        "postings": legs,
    }


def _entry(row: Any, record: dict[str, Any]) -> tuple[JournalEntry | None, str]:
    try:
        postings = tuple(Posting(a, Money(amount, c)) for a, c, amount in record["postings"])
        return (
            JournalEntry(
                entry_id=row.entry_id,
                kind=row.kind,
                project_id=row.project_id,
                effective_at=row.effective_at,
                decision=row.decision,
                reason=row.reason,
                body=record["body"],
                postings=postings,
            ),
            "",
        )
    except (UnbalancedEntry, TypeError, ValueError) as exc:
        return None, str(exc)


def journal_size(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.max(t.journal.c.seq))) or 0)


def iter_journal(engine: Engine, first_seq: int = 1, last_seq: int | None = None) -> Iterator[StoredEntry]:
    last = journal_size(engine) if last_seq is None else last_seq
    lo = first_seq
    while lo <= last:
        hi = min(lo + CHUNK - 1, last)
        with engine.connect() as conn:
            rows = conn.execute(
                select(t.journal).where(t.journal.c.seq.between(lo, hi)).order_by(t.journal.c.seq)
            ).all()
            legs: dict[int, list[list[Any]]] = {}
            for p in conn.execute(
                select(t.postings.c.seq, t.postings.c.account, t.postings.c.currency, t.postings.c.amount)
                .where(t.postings.c.seq.between(lo, hi))
                .order_by(t.postings.c.seq, t.postings.c.leg)
            ):
                legs.setdefault(p.seq, []).append([p.account, p.currency, p.amount])
            leaves = {
                seq: leaf
                for seq, leaf in conn.execute(
                    select(t.merkle_leaves.c.seq, t.merkle_leaves.c.leaf_hash).where(
                        t.merkle_leaves.c.seq.between(lo, hi)
                    )
                )
            }
        for row in rows:
            record = record_of(row, legs.get(row.seq, []))
            entry, problem = _entry(row, record)
            yield StoredEntry(
                row.seq, record, entry, problem, row.prev_hash, row.entry_hash, leaves.get(row.seq)
            )
        lo = hi + 1


def iter_seqs(engine: Engine, seqs: list[int]) -> Iterator[StoredEntry]:
    """The stored entries with these seqs (ascending), read in runs of consecutive seqs."""
    if not seqs:
        return
    start = prev = seqs[0]
    wanted = set(seqs)
    for seq in [*seqs[1:], None]:
        if seq is not None and seq - prev <= CHUNK // 10:
            prev = seq
            continue
        for stored in iter_journal(engine, start, prev):
            if stored.seq in wanted:
                yield stored
        if seq is not None:
            start = prev = seq
