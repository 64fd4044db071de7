"""Streams the stored journal back in order: each entry's canonical bytes, parsed.

verify, rebuild and receipts all read entries through here. An entry is read
from the exact bytes that were hashed (the `canonical` column), so what verify
checks is precisely what rebuild replays and what a receipt proves; the other
journal columns exist for queries and are checked against those bytes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Engine, TextClause, bindparam, func, select, text

from services.ledger.adapters import tables as t
from services.ledger.domain.journal import JournalEntry, Posting, UnbalancedEntry
from services.ledger.domain.money import Money

CHUNK = 20_000
_INDEXED = ("seq", "entry_id", "kind", "project_id", "decision")


@dataclass(slots=True)
class StoredEntry:
    seq: int
    canonical: bytes  # exactly what was hashed
    record: dict[str, Any]  # the canonical bytes, parsed
    entry: JournalEntry | None  # None when the entry is malformed or unbalanced
    problem: str  # why entry is None
    prev_hash: str
    entry_hash: str
    leaf_hash: str | None


def _balanced(legs: list[list[Any]]) -> str:
    sums: dict[str, int] = {}
    for _, currency, amount in legs:
        if type(amount) is not int:
            return f"posting amount {amount!r} is not an integer"
        sums[currency] = sums.get(currency, 0) + amount
    off = {c: v for c, v in sums.items() if v}
    return f"postings do not sum to zero: {off}" if off else ""


def _entry(row: Any, record: dict[str, Any], with_postings: bool) -> tuple[JournalEntry | None, str]:
    if (row.seq, row.entry_id, row.kind, row.project_id, row.decision) != (
        record.get("seq"),
        record.get("entry_id"),
        record.get("kind"),
        record.get("project_id"),
        record.get("decision"),
    ):
        mismatched = [c for c in _INDEXED if record.get(c) != getattr(row, c)]
        return None, f"columns {', '.join(mismatched)} disagree with the hashed entry"
    problem = _balanced(record["postings"])
    if problem:
        return None, problem
    try:
        # Replay and verify never look at Posting objects (projections read the
        # body); building millions of them was most of their cost.
        entry = journal_entry(record, with_postings)
    except (UnbalancedEntry, TypeError, ValueError, KeyError) as exc:
        return None, f"malformed entry: {exc}"
    return entry, ""


def journal_entry(record: dict[str, Any], with_postings: bool = True) -> JournalEntry:
    """The entry a stored record (its canonical JSON, parsed) holds; raises on a malformed one."""
    postings = (
        tuple(Posting(a, Money(amount, c)) for a, c, amount in record["postings"]) if with_postings else ()
    )
    return JournalEntry(
        entry_id=record["entry_id"],
        kind=record["kind"],
        project_id=record["project_id"],
        effective_at=datetime.fromisoformat(record["effective_at"]),
        decision=record["decision"],
        reason=record["reason"],
        body=record["body"],
        postings=postings,
    )


_JOURNAL = text(
    "SELECT seq, entry_id, kind, project_id, decision, canonical, prev_hash, entry_hash "
    "FROM journal WHERE seq BETWEEN :lo AND :hi ORDER BY seq"
)


def _journal_of_projects(dialect: str) -> TextClause:
    # SQLite would otherwise pick the project_id index and visit every entry of
    # each project once per chunk; the unary + keeps it on the seq range.
    column = "+project_id" if dialect == "sqlite" else "project_id"
    return text(
        "SELECT seq, entry_id, kind, project_id, decision, canonical, prev_hash, entry_hash "
        f"FROM journal WHERE seq BETWEEN :lo AND :hi AND {column} IN :projects ORDER BY seq"
    ).bindparams(bindparam("projects", expanding=True))


_LEAVES = text("SELECT seq, leaf_hash FROM merkle_leaves WHERE seq BETWEEN :lo AND :hi")


def journal_size(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.max(t.journal.c.seq))) or 0)


def iter_journal(
    engine: Engine,
    first_seq: int = 1,
    last_seq: int | None = None,
    *,
    with_postings: bool = True,
    projects: frozenset[str] | None = None,
) -> Iterator[StoredEntry]:
    """Stored entries in seq order, of some projects only if `projects` is given.

    with_postings=False gives entries without Posting objects (the record still
    has the postings, checked to balance)."""
    last = journal_size(engine) if last_seq is None else last_seq
    lo = first_seq
    while lo <= last:
        hi = min(lo + CHUNK - 1, last)
        with engine.connect() as conn:
            bounds = {"lo": lo, "hi": hi}
            if projects is None:
                rows = conn.execute(_JOURNAL, bounds).all()
            else:
                query = _journal_of_projects(engine.dialect.name)
                rows = conn.execute(query, {**bounds, "projects": sorted(projects)}).all()
            leaves = {seq: leaf for seq, leaf in conn.execute(_LEAVES, bounds).all()}
        for row in rows:
            data = row.canonical.encode("utf-8")
            try:
                record = orjson.loads(data)  # parsing only; canonical bytes are never re-encoded
            except orjson.JSONDecodeError as exc:
                record = {"seq": row.seq, "entry_id": row.entry_id, "kind": row.kind, "postings": []}
                entry, problem = None, f"stored bytes are not JSON: {exc}"
            else:
                entry, problem = _entry(row, record, with_postings)
            yield StoredEntry(
                row.seq, data, record, entry, problem, row.prev_hash, row.entry_hash, leaves.get(row.seq)
            )
        lo = hi + 1


def iter_seqs(engine: Engine, seqs: list[int]) -> Iterator[StoredEntry]:
    """The stored entries with these seqs (ascending), read in runs of nearby seqs."""
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
