"""`charity-ledger verify`: re-check everything the ledger claims, from the stored data.

1. every entry: contiguous seq, prev_hash links to the entry before, the stored
   chain hash and Merkle leaf equal the ones recomputed from its content, and
   its postings sum to zero per currency;
2. every stored tree head: its root equals the root recomputed at its size, and
   its Ed25519 signature is valid;
3. projections rebuilt from the journal equal the live ones.
It stops at the first bad entry and names it.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, select

from services.ledger import tables as t
from services.ledger.domain.chain import GENESIS_HASH, entry_hashes
from services.ledger.domain.merkle import MerkleTree, TreeHead
from services.ledger.domain.projector import apply_entry
from services.ledger.domain.view import LedgerView
from services.ledger.journal_reader import iter_journal, journal_size
from services.ledger.rebuild import compare_with_live
from services.ledger.tree_signing import verify_tree_head

Progress = Callable[[int, int], None]


@dataclass
class VerifyReport:
    entries: int = 0
    tree_heads: int = 0
    problems: list[str] = field(default_factory=list)
    tree: MerkleTree = field(default_factory=MerkleTree)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(
    engine: Engine, public_key: Ed25519PublicKey | None, progress: Progress | None = None
) -> VerifyReport:
    report = VerifyReport()
    view = LedgerView()
    prev = GENESIS_HASH
    total = journal_size(engine)
    for stored in iter_journal(engine, last_seq=total):
        report.entries += 1
        where = f"entry {stored.seq} ({stored.record['entry_id']}, {stored.record['kind']})"
        entry_hash, leaf = entry_hashes(prev, stored.record)
        problem = (
            f"seq {stored.seq} follows {report.entries - 1}: entries are missing"
            if stored.seq != report.entries
            else f"{where} does not link to the entry before it"
            if stored.prev_hash != prev
            else f"{where} was altered: its content no longer matches its chain hash"
            if entry_hash != stored.entry_hash
            else f"{where} has no Merkle leaf or a wrong one"
            if stored.leaf_hash != leaf
            else f"{where} is unbalanced: {stored.problem}"
            if stored.entry is None
            else ""
        )
        if problem:
            report.problems.append(problem)
            return report
        assert stored.entry is not None
        apply_entry(stored.entry, view)
        project = view.projects.get(stored.entry.project_id)
        if project is not None:
            project.last_entry_seq = stored.seq
        report.tree.append(bytes.fromhex(leaf))
        prev = stored.entry_hash
        if progress is not None and (report.entries % 10_000 == 0 or report.entries == total):
            progress(report.entries, total)
    _check_chain_head(engine, report, prev)
    if report.ok:
        _check_tree_heads(engine, report, public_key)
    if report.ok:
        comparison = compare_with_live(engine, view)
        report.problems.extend(f"projection differs from a rebuild: {d}" for d in comparison.differences[:20])
    return report


def _check_chain_head(engine: Engine, report: VerifyReport, last_hash: str) -> None:
    with engine.connect() as conn:
        head = conn.execute(select(t.chain_head)).one()
    if head.seq != report.entries or head.entry_hash != last_hash:
        report.problems.append(
            f"the chain head says {head.seq} entries ending in {head.entry_hash[:12]}…, "
            f"the journal holds {report.entries} ending in {last_hash[:12]}…"
        )


def _check_tree_heads(engine: Engine, report: VerifyReport, public_key: Ed25519PublicKey | None) -> None:
    with engine.connect() as conn:
        heads = conn.execute(select(t.tree_heads).order_by(t.tree_heads.c.tree_size)).all()
    for row in heads:
        report.tree_heads += 1
        label = f"tree head of size {row.tree_size}"
        if row.tree_size > report.tree.size:
            report.problems.append(f"{label} covers more entries than the journal holds ({report.tree.size})")
            return
        if report.tree.root(row.tree_size).hex() != row.root_hash:
            report.problems.append(f"{label} has a root that does not match the journal")
            return
        head = TreeHead(size=row.tree_size, root=bytes.fromhex(row.root_hash), timestamp_ms=row.timestamp_ms)
        if public_key is not None and not verify_tree_head(public_key, head, base64.b64decode(row.signature)):
            report.problems.append(f"{label} has an invalid signature")
            return
