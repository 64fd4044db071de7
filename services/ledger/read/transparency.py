"""Receipts, inclusion and consistency proofs for anyone, from the stored Merkle
leaves and signed tree heads; reads the database only."""

from __future__ import annotations

import threading
from typing import Any

from sqlalchemy import Engine, select

from services.ledger.adapters import tables as t
from services.ledger.adapters.journal_reader import iter_journal
from services.ledger.adapters.tree_heads import catch_up, head_json
from services.ledger.domain.chain import iso_ms
from services.ledger.domain.merkle import MerkleTree


class NotYetCovered(LookupError):
    """The entry exists but no signed tree head includes it yet."""


class Transparency:
    """Receipts and proofs for anyone; reads the database only."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.tree = MerkleTree()
        self._lock = threading.Lock()

    def _tree(self) -> MerkleTree:
        with self._lock:
            catch_up(self.engine, self.tree)
            return self.tree

    def heads(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(t.tree_heads).order_by(t.tree_heads.c.tree_size.desc()).limit(limit)
            ).all()
        return [head_json(r) for r in rows]

    def head(self, tree_size: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(t.tree_heads).where(t.tree_heads.c.tree_size == tree_size)).first()
        return head_json(row) if row else None

    def receipt(self, entry_id: str) -> dict[str, Any] | None:
        """The entry, its inclusion proof and the newest signed head that covers it."""
        with self.engine.connect() as conn:
            seq = conn.scalar(select(t.journal.c.seq).where(t.journal.c.entry_id == entry_id))
            if seq is None:
                return None
            head = conn.execute(
                select(t.tree_heads)
                .where(t.tree_heads.c.tree_size >= seq)
                .order_by(t.tree_heads.c.tree_size.desc())
                .limit(1)
            ).first()
        if head is None:
            raise NotYetCovered(f"entry {entry_id} is recorded but not yet in a signed tree head")
        stored = next(iter_journal(self.engine, first_seq=seq, last_seq=seq))
        tree = self._tree()
        proof = tree.inclusion_proof(seq - 1, head.tree_size)
        return {
            "entry": stored.record,
            # The exact text the leaf hashes (as UTF-8). A browser hashes it as it is
            # rather than re-serialising `entry` (a JavaScript number cannot hold every
            # integer JSON can), and checks that `entry` says the same.
            "canonical": stored.canonical.decode("utf-8"),
            "leaf_hash": stored.leaf_hash,
            "leaf_index": seq - 1,
            "tree_size": head.tree_size,
            "inclusion_proof": [p.hex() for p in proof],
            "tree_head": head_json(head),
        }

    def consistency(self, old_size: int, new_size: int) -> list[str]:
        tree = self._tree()
        if not 0 < old_size <= new_size <= tree.size:
            raise ValueError(f"sizes must satisfy 0 < old <= new <= {tree.size}")
        return [p.hex() for p in tree.consistency_proof(old_size, new_size)]

    def public_keys(self) -> list[dict[str, Any]]:
        """Every key that has signed tree heads, oldest first (rotation adds one)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.signing_keys).order_by(t.signing_keys.c.valid_from)).all()
        return [
            {
                "key_id": r.key_id,
                "algorithm": r.algorithm,
                "valid_from": iso_ms(r.valid_from),
                "public_key": r.public_key,
            }
            for r in rows
        ]

    def current_public_key(self) -> str | None:
        """The PEM of the newest key, or None before the ledger has registered one."""
        keys = self.public_keys()
        return str(keys[-1]["public_key"]) if keys else None
