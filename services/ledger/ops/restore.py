"""Rebuild a wiped ledger database from the journal topic (`charity-ledger restore --from-topic`).

`charity.ledger.journal` holds every committed entry in seq order (docs/architecture.md,
"Outputs from the journal"): its canonical bytes, both hashes and the input record it was
decided from. A restore, into an empty migrated database only:

1. reads the checkpoints topic: the signed tree heads and the keys that signed them;
2. verifies every head's signature (with the keys on the topic, or only with the keys
   the operator trusts);
3. streams the journal topic, puts the records in seq order (the relay publishes at least
   once: a repeat must be identical), checks each entry against the chain (its previous
   hash, its own hash over the canonical bytes, seq and id inside those bytes) and writes
   it back in chunks exactly as it was (same canonical text, hashes, seq), its postings
   and Merkle leaf; when the restored leaves reach a signed head's size, their root must
   be the head's. A record that is not a journal entry, or names a seq below 1, is refused
   by where it is (topic, partition, offset);
4. stores the heads, their keys, the chain head, the outputs watermarks (everything
   restored is on the topics already) and the consumer offsets: for each input
   partition an entry came from, the offset after the last such entry, so the ledger
   resumes there (records after it that made no entry, dead letters and duplicates,
   are read again: duplicates are dropped by event id, dead letters may be sent to
   the DLQ again, as after any crash);
5. rebuilds the projections from the restored journal (`ops.rebuild`).

Steps 3-4 are one transaction: a restore that fails leaves the database empty.

Memory stays bounded whatever the journal's length: the chain needs only the previous
hash, the Merkle tree only its right edge (`MerkleFrontier`), a repeat is compared with
the last RECENT hashes or else with the entry already written, and at most AHEAD records
wait for a missing seq (the journal topic has one partition and the relay publishes in
order, so they wait for none).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, Table, exists, select, update
from sqlalchemy.engine import Connection

from services.contracts.events import Event, JournalEntryCommitted, SigningKeyPublished, TreeHeadPublished
from services.ledger.adapters import tables as t
from services.ledger.adapters.signing import load_public_key_pem, verify_tree_head
from services.ledger.adapters.store import write_watermark
from services.ledger.adapters.topic_reader import TopicRecord
from services.ledger.domain.chain import GENESIS_HASH, hashes_of
from services.ledger.domain.merkle import MerkleFrontier, TreeHead
from services.ledger.ops.rebuild import replace_live, replay
from services.ledger.service.ports import JOURNAL_STREAM, TREE_HEADS_STREAM

CHUNK = 5_000  # entries written at a time
RECENT = 2 * CHUNK  # entry hashes kept to compare repeats with (older ones: from the database)
AHEAD = 100_000  # records held, at most, while a seq before them is missing
# Everything the ledger writes but the signing keys, which a ledger started on the
# wiped database may already have registered (the restore adds the others).
LEDGER_TABLES = (
    t.journal,
    t.postings,
    t.merkle_leaves,
    t.tree_heads,
    t.consumer_offsets,
    t.project_totals,
    t.donations,
    t.disbursements,
    t.suspense_resolutions,
    t.feed_outbox,
)
Progress = Callable[[int, int | None], None]  # (done, in all if known)


class RestoreRefused(RuntimeError):
    """The database is not empty, or the topics do not hold a journal that checks out."""


@dataclass
class RestoreReport:
    entries: int
    tree_size: int  # of the latest signed head, which the restored leaves reproduce
    root_hash: str
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)  # next offset to read
    projects: int = 0


@dataclass
class Checkpoints:
    heads: dict[int, TreeHeadPublished] = field(default_factory=dict)  # by tree size
    keys: dict[str, SigningKeyPublished] = field(default_factory=dict)  # by key id

    @classmethod
    def of(cls, events: Iterable[Event]) -> Checkpoints:
        found = cls()
        for event in events:
            if isinstance(event, TreeHeadPublished):
                found.heads.setdefault(event.tree_size, event)
            elif isinstance(event, SigningKeyPublished):
                found.keys.setdefault(event.key_id, event)
        return found


def held_tables(conn: Connection) -> list[str]:
    """The ledger tables that hold rows (a wiped database: none, and the chain at seq 0)."""
    held = [table.name for table in LEDGER_TABLES if conn.scalar(select(exists().select_from(table)))]
    if conn.scalar(select(t.chain_head.c.seq).where(t.chain_head.c.id == 1)):
        held.append("chain_head")
    return held


def in_seq_order(
    records: Iterable[TopicRecord], earlier: Callable[[int], str | None], recent: int = RECENT
) -> Iterator[JournalEntryCommitted]:
    """The journal topic's records by seq from 1, each once; a repeat must be the same entry.

    A repeat is compared with the last `recent` entries' hashes, an older one with
    `earlier(seq)`, the hash of the entry already restored at that seq."""
    hashes: dict[int, str] = {}  # entry_hash of the last `recent` seqs given out
    pending: dict[int, JournalEntryCommitted] = {}
    next_seq = 1
    for record in records:
        event = record.event
        if not isinstance(event, JournalEntryCommitted):
            raise RestoreRefused(f"{record.where} is a {event.type_name}, not a journal entry")
        seq = event.seq
        if seq < 1:
            raise RestoreRefused(f"{record.where} is a journal entry with seq {seq} (seqs start at 1)")
        if seq < next_seq or seq in pending:
            first = pending[seq].entry_hash if seq in pending else hashes.get(seq) or earlier(seq)
            if first != event.entry_hash:
                raise RestoreRefused(
                    f"seq {seq} is on the journal topic twice, as two entries ({record.where})"
                )
            continue
        pending[seq] = event
        if len(pending) > AHEAD:
            raise RestoreRefused(
                f"the journal topic lacks seq {next_seq}: {AHEAD} records after it came first "
                f"(up to {record.where})"
            )
        while next_seq in pending:
            ready = pending.pop(next_seq)
            hashes[next_seq] = ready.entry_hash
            hashes.pop(next_seq - recent, None)
            next_seq += 1
            yield ready
    if pending:
        raise RestoreRefused(f"the journal topic lacks seq {next_seq} (it holds up to {max(pending)})")


@dataclass
class _Restorer:
    """Writes checked entries in chunks within one transaction, keeping the right edge of
    the Merkle tree, the chain's last hash and the input offsets the entries came from,
    and checks each signed head's root when the restored leaves reach its size."""

    conn: Connection
    heads: list[TreeHeadPublished]  # by tree size, signatures verified
    progress: Progress | None = None
    tree: MerkleFrontier = field(default_factory=MerkleFrontier)
    prev_hash: str = GENESIS_HASH
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    _checked: int = 0  # heads whose root the leaves reproduced
    _journal: list[dict[str, Any]] = field(default_factory=list)
    _postings: list[dict[str, Any]] = field(default_factory=list)
    _leaves: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._check_heads()  # any over the empty tree

    def add(self, committed: JournalEntryCommitted) -> None:
        seq, canonical = committed.seq, committed.canonical.encode("utf-8")
        entry_hash, leaf = hashes_of(self.prev_hash, canonical)
        if committed.prev_hash != self.prev_hash or committed.entry_hash != entry_hash:
            raise RestoreRefused(f"entry {seq} does not chain to the one before (or its hash is wrong)")
        record = orjson.loads(canonical)
        if (record.get("seq"), record.get("entry_id")) != (seq, committed.entry_id):
            raise RestoreRefused(f"entry {seq}: the hashed bytes name seq {record.get('seq')}")
        self._journal.append(
            {
                "seq": seq,
                "entry_id": record["entry_id"],
                "kind": record["kind"],
                "project_id": record["project_id"],
                "effective_at": datetime.fromisoformat(record["effective_at"]),
                "recorded_at": datetime.fromisoformat(record["recorded_at"]),
                "decision": record["decision"],
                "reason": record["reason"],
                "canonical": committed.canonical,
                "source": committed.source or "",
                "prev_hash": committed.prev_hash,
                "entry_hash": entry_hash,
            }
        )
        self._postings.extend(
            {"seq": seq, "leg": leg, "account": account, "currency": currency, "amount": amount}
            for leg, (account, currency, amount) in enumerate(record["postings"])
        )
        self._leaves.append({"seq": seq, "leaf_hash": leaf})
        self.tree.append(bytes.fromhex(leaf))
        self.prev_hash = entry_hash
        if committed.source:
            topic, partition, offset = committed.source.rsplit("/", 2)
            key = (topic, int(partition))
            self.offsets[key] = max(self.offsets.get(key, 0), int(offset) + 1)
        self._check_heads()
        if len(self._journal) >= CHUNK:
            self.flush()

    def entry_hash(self, seq: int) -> str | None:
        """The hash of an entry restored already (written, or in the chunk not yet written)."""
        if self._journal and seq >= self._journal[0]["seq"]:
            return str(self._journal[seq - self._journal[0]["seq"]]["entry_hash"])
        return self.conn.scalar(select(t.journal.c.entry_hash).where(t.journal.c.seq == seq))

    def flush(self) -> None:
        for table, rows in (
            (t.journal, self._journal),
            (t.postings, self._postings),
            (t.merkle_leaves, self._leaves),
        ):
            if rows:
                self.conn.execute(table.insert(), rows)
            rows.clear()
        if self.progress is not None:
            self.progress(self.tree.size, None)

    def finish(self) -> None:
        """The last chunk written; every head must have been reached."""
        self.flush()
        if self.tree.size and not self.heads:
            raise RestoreRefused(
                "the checkpoints topic holds no signed tree head to compare the journal with"
            )
        if self._checked < len(self.heads):
            raise RestoreRefused(
                f"a head signed over {self.heads[self._checked].tree_size} entries, but the journal topic "
                f"holds {self.tree.size}: entries the ledger committed are missing from it"
            )

    def _check_heads(self) -> None:
        while self._checked < len(self.heads) and self.heads[self._checked].tree_size == self.tree.size:
            head = self.heads[self._checked]
            root = self.tree.root().hex()
            if root != head.root_hash:
                raise RestoreRefused(
                    f"the restored leaves' root at size {head.tree_size} is {root[:16]}…, "
                    f"the signed head says {head.root_hash[:16]}…"
                )
            self._checked += 1


def signed_heads(marks: Checkpoints, trusted: dict[str, Ed25519PublicKey] | None) -> list[TreeHeadPublished]:
    """Every signed head, by tree size, each signed by a trusted key (without `trusted`:
    one published on the checkpoints topic); their roots are checked as the journal is restored."""
    # Named keys, even none: never the topic's keys the operator gave them instead of.
    keys = (
        trusted
        if trusted is not None
        else {k: load_public_key_pem(p.public_key) for k, p in marks.keys.items()}
    )
    heads = [marks.heads[size] for size in sorted(marks.heads)]
    for head in heads:
        key = keys.get(head.key_id)
        if key is None:
            raise RestoreRefused(
                f"the head of size {head.tree_size} is signed by key {head.key_id[:16]}…, "
                "which is not among the trusted keys"
            )
        signed = TreeHead(head.tree_size, bytes.fromhex(head.root_hash), head.timestamp_ms)
        if not verify_tree_head(key, signed, base64.b64decode(head.signature, validate=True)):
            raise RestoreRefused(f"the signature of the head of size {head.tree_size} does not verify")
    return heads


def restore(
    engine: Engine,
    journal: Iterable[TopicRecord],
    checkpoints: Iterable[Event],
    group_id: str,
    trusted: dict[str, Ed25519PublicKey] | None = None,
    progress: Progress | None = None,
    rebuilding: Progress | None = None,
    projections: bool = True,
) -> RestoreReport:
    """Restore the journal (see the module's docstring) and rebuild the projections (step 5,
    unless not `projections`); `progress` follows the entries restored, `rebuilding` the
    projections' rebuild."""
    with engine.connect() as conn:
        held = held_tables(conn)
    if held:
        raise RestoreRefused(
            f"the ledger database is not empty ({', '.join(held)} hold rows): "
            "a restore writes only into a wiped, migrated database"
        )
    marks = Checkpoints.of(checkpoints)
    heads = signed_heads(marks, trusted)
    with engine.begin() as conn:
        restorer = _Restorer(conn, heads, progress)
        for committed in in_seq_order(journal, restorer.entry_hash):
            restorer.add(committed)
        restorer.finish()
        _store_bookkeeping(conn, restorer, heads, marks, group_id, trusted)
    latest = heads[-1] if heads else None
    report = RestoreReport(
        entries=restorer.tree.size,
        tree_size=latest.tree_size if latest else 0,
        root_hash=latest.root_hash if latest else restorer.tree.root().hex(),
        offsets=restorer.offsets,
    )
    if projections:
        rebuilt = replay(engine, rebuilding)
        replace_live(engine, rebuilt)
        report.projects = len(rebuilt.projects)
    return report


def _store_bookkeeping(
    conn: Connection,
    restorer: _Restorer,
    heads: list[TreeHeadPublished],
    marks: Checkpoints,
    group_id: str,
    trusted: dict[str, Ed25519PublicKey] | None,
) -> None:
    """The heads and their keys, the chain head, the watermarks and the consumer offsets."""
    if heads:
        conn.execute(t.tree_heads.insert(), _rows(t.tree_heads, heads))
    registered = set(conn.scalars(select(t.signing_keys.c.key_id)))
    new_keys = [
        k for kid, k in marks.keys.items() if kid not in registered and (trusted is None or kid in trusted)
    ]
    if new_keys:
        conn.execute(t.signing_keys.insert(), _rows(t.signing_keys, new_keys))
    conn.execute(
        update(t.chain_head)
        .where(t.chain_head.c.id == 1)
        .values(seq=restorer.tree.size, entry_hash=restorer.prev_hash)
    )
    # Exactly where the restored journal and heads end (everything restored is on the topics
    # already): a watermark never moves back, so one left over from the wiped database, above
    # these, would keep what the ledger adds up to there from ever being published.
    watermarks = t.output_watermarks
    conn.execute(watermarks.delete().where(watermarks.c.stream.in_((JOURNAL_STREAM, TREE_HEADS_STREAM))))
    write_watermark(conn, JOURNAL_STREAM, restorer.tree.size)
    write_watermark(conn, TREE_HEADS_STREAM, heads[-1].tree_size if heads else 0)
    if restorer.offsets:
        conn.execute(
            t.consumer_offsets.insert(),
            [
                {"group_id": group_id, "topic": topic, "partition": partition, "next_offset": offset}
                for (topic, partition), offset in sorted(restorer.offsets.items())
            ],
        )


def _rows(table: Table, events: Sequence[Event]) -> list[dict[str, Any]]:
    """The table's row of each event: the events carry every column under its name."""
    return [{column.name: getattr(event, column.name) for column in table.columns} for event in events]
