"""`charity-ledger verify`: re-check everything the ledger claims, from the stored data.

1. every entry: contiguous seq, prev_hash links to the entry before, the stored
   chain hash and Merkle leaf equal the ones recomputed from its stored bytes,
   its query columns agree with those bytes, and its postings sum to zero per
   currency; the postings table sums per account to what the entries say;
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
from sqlalchemy import Engine, func, select

from services.ledger import tables as t
from services.ledger.domain.chain import GENESIS_HASH, hashes_of
from services.ledger.domain.merkle import MerkleTree, TreeHead
from services.ledger.domain.projector import apply_entry
from services.ledger.domain.view import LedgerView
from services.ledger.journal_reader import StoredEntry, iter_journal, journal_size
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
    account_sums: dict[str, int] = {}
    total = journal_size(engine)
    for stored in iter_journal(engine, last_seq=total, with_postings=False):
        report.entries += 1
        entry_hash, leaf = hashes_of(prev, stored.canonical)
        if (
            stored.seq == report.entries
            and stored.prev_hash == prev
            and entry_hash == stored.entry_hash
            and stored.leaf_hash == leaf
            and stored.entry is not None
        ):
            problem = ""
        else:
            where = f"entry {stored.seq} ({stored.record.get('entry_id')}, {stored.record.get('kind')})"
            problem = _first_problem(stored, report.entries, prev, where, entry_hash, leaf)
        if problem:
            report.problems.append(problem)
            return report
        assert stored.entry is not None
        apply_entry(stored.entry, view)
        for account, _currency, amount in stored.record["postings"]:
            account_sums[account] = account_sums.get(account, 0) + amount
        project = view.projects.get(stored.entry.project_id)
        if project is not None:
            project.last_entry_seq = stored.seq
        report.tree.append(bytes.fromhex(leaf))
        prev = stored.entry_hash
        if progress is not None and (report.entries % 10_000 == 0 or report.entries == total):
            progress(report.entries, total)
    _check_chain_head(engine, report, prev)
    if report.ok:
        _check_postings_table(engine, report, account_sums)
    if report.ok:
        _check_tree_heads(engine, report, public_key)
    if report.ok:
        comparison = compare_with_live(engine, view)
        report.problems.extend(f"projection differs from a rebuild: {d}" for d in comparison.differences[:20])
    return report


def _first_problem(
    stored: StoredEntry, expected_seq: int, prev: str, where: str, entry_hash: str, leaf: str
) -> str:
    if stored.seq != expected_seq:
        return f"seq {stored.seq} follows {expected_seq - 1}: entries are missing"
    if stored.prev_hash != prev:
        return f"{where} does not link to the entry before it"
    if entry_hash != stored.entry_hash:
        return f"{where} was altered: its content no longer matches its chain hash"
    if stored.leaf_hash != leaf:
        return f"{where} has no Merkle leaf or a wrong one"
    return f"{where} is invalid: {stored.problem}"


def _check_chain_head(engine: Engine, report: VerifyReport, last_hash: str) -> None:
    with engine.connect() as conn:
        head = conn.execute(select(t.chain_head)).one()
    if head.seq != report.entries or head.entry_hash != last_hash:
        report.problems.append(
            f"the chain head says {head.seq} entries ending in {head.entry_hash[:12]}…, "
            f"the journal holds {report.entries} ending in {last_hash[:12]}…"
        )


def _check_postings_table(engine: Engine, report: VerifyReport, expected: dict[str, int]) -> None:
    """The postings table (what balance queries sum) must agree with the hashed entries."""
    with engine.connect() as conn:
        stored = {
            a: int(s)
            for a, s in conn.execute(
                select(t.postings.c.account, func.sum(t.postings.c.amount)).group_by(t.postings.c.account)
            )
        }
    expected = {a: s for a, s in expected.items() if s or a in stored}
    for account in sorted(set(stored) | set(expected)):
        if stored.get(account, 0) != expected.get(account, 0):
            report.problems.append(
                f"postings table: account {account} sums to {stored.get(account, 0)}, "
                f"the hashed entries say {expected.get(account, 0)}"
            )
            return


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
