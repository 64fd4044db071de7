"""`charity-ledger verify`: re-check everything the ledger claims, from the stored data.

1. every entry: its stored chain hash and Merkle leaf equal the ones
   recomputed from its stored bytes, its query columns agree with those bytes,
   and its postings sum to zero per currency;
2. the chain: contiguous seq, each prev_hash is the entry_hash before it, and
   the chain head row points at the last entry;
3. the postings table sums per account to what the hashed entries say;
4. every stored tree head: its root equals the root recomputed at its size,
   and its Ed25519 signature is valid;
5. projections rebuilt from the journal equal the live ones.
It reports the first bad entry (lowest seq) by name.

Large journals are checked by two worker processes, each taking the entries
of half the projects (1 and 5 are per project, so they split cleanly), while
this process walks the chain links and rebuilds the Merkle tree (2 and 4).
"""

from __future__ import annotations

import base64
import multiprocessing
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, func, select, text

from services.ledger.adapters import tables as t
from services.ledger.adapters.journal_reader import CHUNK, StoredEntry, iter_journal, journal_size
from services.ledger.adapters.signing import key_id, verify_tree_head
from services.ledger.domain.chain import GENESIS_HASH, hashes_of
from services.ledger.domain.merkle import MerkleTree, TreeHead
from services.ledger.domain.projector import apply_entry
from services.ledger.domain.view import LedgerView
from services.ledger.ops.rebuild import compare_with_live, mark_seq
from services.platform.db import make_engine

Progress = Callable[[int, int], None]
# Below this, starting worker processes costs more than it saves.
PARALLEL_FROM = 50_000


@dataclass
class VerifyReport:
    entries: int = 0
    tree_heads: int = 0
    problems: list[str] = field(default_factory=list)
    tree: MerkleTree = field(default_factory=MerkleTree)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class PartResult:
    """What one worker found in the entries of its projects."""

    entries: int = 0
    first_bad: tuple[int, str] | None = None  # (seq, problem)
    account_sums: dict[str, int] = field(default_factory=dict)
    differences: list[str] = field(default_factory=list)


def check_entries(engine: Engine, last_seq: int, projects: frozenset[str] | None) -> PartResult:
    """Steps 1 and 5 for the entries of `projects` (all if None)."""
    result = PartResult()
    view = LedgerView()
    for stored in iter_journal(engine, last_seq=last_seq, with_postings=False, projects=projects):
        result.entries += 1
        problem = entry_problem(stored)
        if problem or stored.entry is None:
            result.first_bad = (stored.seq, problem)
            return result
        apply_entry(stored.entry, view)
        for account, _currency, amount in stored.record["postings"]:
            result.account_sums[account] = result.account_sums.get(account, 0) + amount
        mark_seq(view, stored.entry, stored.seq)
    result.differences = compare_with_live(engine, view, projects).differences[:20]
    return result


def _shares(engine: Engine, workers: int) -> list[frozenset[str]]:
    """The projects split among workers, a project and those its suspense was redirected to
    always in one share: a redirection's entry changes both."""
    with engine.connect() as conn:
        projects = sorted(conn.scalars(select(t.journal.c.project_id).distinct()))
        redirections = conn.execute(
            select(t.journal.c.project_id, t.journal.c.canonical).where(
                t.journal.c.kind == "SuspenseResolutionApproved", t.journal.c.decision == "posted"
            )
        ).all()
    group = {p: p for p in projects}

    def root(p: str) -> str:
        while group[p] != p:
            p = group[p]
        return p

    for source, canonical in redirections:
        target = orjson.loads(canonical)["body"].get("target_project_id")
        if target in group:
            group[root(target)] = root(source)
    groups: dict[str, set[str]] = {}
    for p in projects:
        groups.setdefault(root(p), set()).add(p)
    shares: list[set[str]] = [set() for _ in range(workers)]
    for members in sorted(groups.values(), key=len, reverse=True):
        min(shares, key=len).update(members)
    return [frozenset(s) for s in shares if s]


def _check_entries_in_worker(url: str, last_seq: int, projects: frozenset[str]) -> PartResult:
    engine = make_engine(url, writer=False)
    try:
        return check_entries(engine, last_seq, projects)
    finally:
        engine.dispose()


def entry_problem(stored: StoredEntry) -> str:
    """Step 1 for one entry ("" if it is sound): its chain hash and Merkle leaf
    recomputed from its stored bytes, its columns and its balance."""
    entry_hash, leaf = hashes_of(stored.prev_hash, stored.canonical)
    if entry_hash != stored.entry_hash or stored.leaf_hash != leaf or stored.entry is None:
        return _entry_problem(stored, entry_hash, leaf)
    return ""


def _entry_problem(stored: StoredEntry, entry_hash: str, leaf: str) -> str:
    where = f"entry {stored.seq} ({stored.record.get('entry_id')}, {stored.record.get('kind')})"
    if entry_hash != stored.entry_hash:
        return f"{where} was altered: its content no longer matches its chain hash"
    if stored.leaf_hash != leaf:
        return f"{where} has no Merkle leaf or a wrong one"
    return f"{where} is invalid: {stored.problem}"


PublicKeys = Mapping[str, Ed25519PublicKey]  # by key id, oldest first


def verify(
    engine: Engine,
    public_keys: Ed25519PublicKey | PublicKeys | None,
    progress: Progress | None = None,
    workers: int | None = None,
) -> VerifyReport:
    report = VerifyReport()
    total = journal_size(engine)
    workers = workers or (2 if total >= PARALLEL_FROM else 1)
    if workers == 1:
        parts = [check_entries(engine, total, None)]
        bad_link = _walk_chain(engine, report, total, progress)
    else:
        shares = _shares(engine, workers)
        url = engine.url.render_as_string(hide_password=False)
        # spawn, not fork: the caller may have threads (Kafka clients, servers).
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(_check_entries_in_worker, url, total, share) for share in shares]
            bad_link = _walk_chain(engine, report, total, progress)
            parts = [f.result() for f in futures]
    bad = [p.first_bad for p in parts if p.first_bad] + ([bad_link] if bad_link else [])
    if bad:
        report.problems.append(min(bad)[1])
        return report
    if sum(p.entries for p in parts) != total:
        report.problems.append(f"{total - sum(p.entries for p in parts)} entries belong to no project")
        return report
    _check_chain_head(engine, report)
    sums: dict[str, int] = {}
    for part in parts:
        for account, amount in part.account_sums.items():
            sums[account] = sums.get(account, 0) + amount
    if report.ok:
        _check_postings_table(engine, report, sums)
    if report.ok:
        _check_tree_heads(engine, report, by_id(public_keys))
    if report.ok:
        differences = [d for p in parts for d in p.differences]
        report.problems.extend(f"projection differs from a rebuild: {d}" for d in differences[:20])
    return report


def _walk_chain(
    engine: Engine, report: VerifyReport, total: int, progress: Progress | None
) -> tuple[int, str] | None:
    """Steps 2 and the tree: links between consecutive entries, and the Merkle tree from stored leaves.

    The leaves themselves are checked against each entry's bytes by check_entries."""
    prev = GENESIS_HASH
    links = text("SELECT seq, prev_hash, entry_hash FROM journal WHERE seq BETWEEN :lo AND :hi ORDER BY seq")
    leaves = text("SELECT seq, leaf_hash FROM merkle_leaves WHERE seq BETWEEN :lo AND :hi ORDER BY seq")
    for lo in range(1, total + 1, CHUNK):
        bounds = {"lo": lo, "hi": min(lo + CHUNK - 1, total)}
        with engine.connect() as conn:
            chunk = conn.execute(links, bounds).all()
            leaf_rows = conn.execute(leaves, bounds).all()
        for seq, prev_hash, entry_hash in chunk:
            problem = link_problem(seq, prev_hash, report.entries, prev)
            report.entries += 1
            if problem:
                return seq, problem
            prev = entry_hash
        for seq, leaf in leaf_rows:
            if seq != report.tree.size + 1:
                return seq, f"entry {seq} has no Merkle leaf"
            report.tree.append(bytes.fromhex(leaf))
        if progress is not None:
            progress(report.entries, total)
    return None


def link_problem(seq: int, prev_hash: str, previous_seq: int, previous_hash: str) -> str:
    """Step 2 for one link ("" if it holds): the entry follows the one before without a gap
    and names its hash."""
    if seq != previous_seq + 1:
        return f"seq {seq} follows {previous_seq}: entries are missing"
    if prev_hash != previous_hash:
        return f"entry {seq} does not link to the entry before it"
    return ""


def _check_chain_head(engine: Engine, report: VerifyReport) -> None:
    with engine.connect() as conn:
        head = conn.execute(select(t.chain_head)).one()
        last = conn.scalar(select(t.journal.c.entry_hash).where(t.journal.c.seq == report.entries))
    if head.seq != report.entries or head.entry_hash != (last or GENESIS_HASH):
        report.problems.append(
            f"the chain head says {head.seq} entries ending in {head.entry_hash[:12]}…, "
            f"the journal holds {report.entries} ending in {(last or GENESIS_HASH)[:12]}…"
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
    for account in sorted(set(stored) | set(expected)):
        if stored.get(account, 0) != expected.get(account, 0):
            report.problems.append(
                f"postings table: account {account} sums to {stored.get(account, 0)}, "
                f"the hashed entries say {expected.get(account, 0)}"
            )
            return


def by_id(keys: Ed25519PublicKey | PublicKeys | None) -> PublicKeys | None:
    if isinstance(keys, Ed25519PublicKey):
        return {key_id(keys): keys}
    return keys


def _check_tree_heads(engine: Engine, report: VerifyReport, public_keys: PublicKeys | None) -> None:
    """Each head's root against the journal and, with keys, its signature against the key
    it names (heads signed before key ids were recorded: the oldest key)."""
    with engine.connect() as conn:
        heads = conn.execute(select(t.tree_heads).order_by(t.tree_heads.c.tree_size)).all()
    for row in heads:
        report.tree_heads += 1
        problem = tree_head_problem(row, report.tree, public_keys)
        if problem:
            report.problems.append(problem)
            return


def tree_head_problem(row: Any, tree: MerkleTree, public_keys: PublicKeys | None) -> str:
    """Step 4 for one stored head ("" if it is sound): its root against the tree of the
    journal's leaves and, with keys, its signature against the key it names."""
    label = f"tree head of size {row.tree_size}"
    if row.tree_size > tree.size:
        return f"{label} covers more entries than the journal holds ({tree.size})"
    if tree.root(row.tree_size).hex() != row.root_hash:
        return f"{label} has a root that does not match the journal"
    head = TreeHead(size=row.tree_size, root=bytes.fromhex(row.root_hash), timestamp_ms=row.timestamp_ms)
    if public_keys is None:
        return ""
    named = row.key_id or next(iter(public_keys), None)
    key = public_keys.get(named) if named else None
    if key is None:
        return f"{label} names the signing key {named}, which is not a known public key"
    if not verify_tree_head(key, head, base64.b64decode(row.signature)):
        return f"{label} has an invalid signature (key {named})"
    return ""
