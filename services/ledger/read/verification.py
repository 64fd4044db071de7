"""The journal's verification status, for pages: the hash chain checked and the latest
signed tree head checked against the journal and its signing key.

One `JournalVerification` per process, incremental: it remembers the last seq it
verified, that entry's hash and the Merkle tree of the leaves it verified, so each
call checks only the entries added since, and at most `step` of them (a page opened
right after start shows "catching up" rather than walking a million entries in one
request). Each call also re-reads a rolling window of `sweep` entries it verified
before, so an entry altered behind its back (its row edited in the database file) is
found within journal size / sweep calls; a re-read entry must hash as before and
have the leaf the signed heads were checked against, so rewriting the chain after an
altered entry does not hide it. A problem, once found, stays until the process
restarts: the journal is append-only, so a good state cannot legitimately return.

The checks themselves are `charity-ledger verify`'s (services/ledger/ops/verify.py),
entry by entry; the full `verify` also rebuilds projections and sums the postings
table, which a page does not.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import Engine, select

from services.ledger.adapters import tables as t
from services.ledger.adapters.journal_reader import StoredEntry, iter_journal, journal_size
from services.ledger.domain.chain import GENESIS_HASH
from services.ledger.domain.merkle import MerkleTree
from services.ledger.ops.commands import registered_keys
from services.ledger.ops.verify import entry_problem, link_problem, tree_head_problem

State = Literal["verified", "catching_up", "failed"]


@dataclass(frozen=True, slots=True)
class VerificationStatus:
    state: State
    checked_seq: int  # the chain is checked from seq 1 up to here
    journal_seq: int  # the journal's last seq when this was read
    problem: str  # "" unless failed
    head_size: int | None  # the latest signed tree head; None before the first
    head_time: datetime | None
    head_key_id: str | None
    checked_at: datetime

    @property
    def ok(self) -> bool:
        return self.state == "verified"


class JournalVerification:
    """The journal's verification status, checked incrementally (see the module's doc)."""

    def __init__(
        self,
        engine: Engine,
        *,
        step: int = 50_000,
        sweep: int = 5_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.step = step
        self.sweep = sweep
        self.clock = clock
        self._lock = threading.Lock()
        self._seq = 0
        self._hash = GENESIS_HASH
        self._tree = MerkleTree()
        self._swept = 0  # the rolling re-check has covered seqs 1.._swept this round
        self._problem = ""

    def status(self) -> VerificationStatus:
        with self._lock:
            # The head is read first: it is stored after the entries it covers,
            # so the entries read next include all of them.
            with self.engine.connect() as conn:
                head = conn.execute(
                    select(t.tree_heads).order_by(t.tree_heads.c.tree_size.desc()).limit(1)
                ).first()
            total = journal_size(self.engine)
            if not self._problem:
                self._problem = self._extend(total) or self._resweep()
            caught_up = self._seq >= total
            if not self._problem and head is not None and (caught_up or head.tree_size <= self._seq):
                self._problem = tree_head_problem(head, self._tree, registered_keys(self.engine))
            state: State = "failed" if self._problem else "verified" if caught_up else "catching_up"
            return VerificationStatus(
                state=state,
                checked_seq=self._seq,
                journal_seq=total,
                problem=self._problem,
                head_size=head.tree_size if head else None,
                head_time=datetime.fromtimestamp(head.timestamp_ms / 1000, UTC) if head else None,
                head_key_id=head.key_id if head else None,
                checked_at=self.clock(),
            )

    def _extend(self, total: int) -> str:
        """Check up to `step` entries beyond the last verified one."""
        if total < self._seq:
            return f"the journal ends at seq {total}, but entries up to {self._seq} were verified"
        last = min(total, self._seq + self.step)
        for stored in iter_journal(self.engine, self._seq + 1, last, with_postings=False):
            problem = link_problem(stored.seq, stored.prev_hash, self._seq, self._hash) or entry_problem(
                stored
            )
            if problem:
                return problem
            self._tree.append(bytes.fromhex(stored.leaf_hash or ""))  # checked by entry_problem
            self._seq, self._hash = stored.seq, stored.entry_hash
        if self._seq < last:
            return f"seq {last} is missing: the journal ends at {self._seq}"
        return ""

    def _resweep(self) -> str:
        """Re-check the next `sweep` entries verified before, from seq 1 again after the last."""
        if self._swept >= self._seq:
            self._swept = 0
        first, last = self._swept + 1, min(self._seq, self._swept + self.sweep)
        previous: StoredEntry | None = None
        for stored in iter_journal(self.engine, max(1, first - 1), last, with_postings=False):
            if stored.seq >= first:
                before = (previous.seq, previous.entry_hash) if previous else (0, GENESIS_HASH)
                problem = link_problem(stored.seq, stored.prev_hash, *before) or entry_problem(stored)
                if not problem and stored.leaf_hash != self._tree.leaf_hash(stored.seq - 1).hex():
                    problem = f"entry {stored.seq} was rewritten after it was verified"
                if problem:
                    return problem
            previous = stored
        self._swept = last
        return ""
