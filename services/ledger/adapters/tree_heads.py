"""Signed tree heads: the ledger's Merkle tree over the journal, caught up from
stored leaves, signed and stored (TreeHeadSigner). The read side
(`read.transparency`) serves receipts and proofs from the same leaves.
"""

from __future__ import annotations

import base64
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select
from sqlalchemy.engine import Connection

from services.contracts import events as ev
from services.contracts.codec import EventCodec
from services.contracts.topics import Topics
from services.ledger import metrics
from services.ledger.adapters import tables as t
from services.ledger.adapters.signing import load_or_create_signing_key, register_public_key, sign_tree_head
from services.ledger.adapters.store import read_watermark, write_watermark
from services.ledger.domain.merkle import MerkleTree, TreeHead
from services.ledger.service.ports import TREE_HEADS_STREAM, OutputPort

log = logging.getLogger(__name__)
CATCH_UP_CHUNK = 50_000


def _identity(path: Path | None) -> tuple[int, int] | None:
    """Which file is at `path` (inode, modification time): a rotation replaces it."""
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_ino, stat.st_mtime_ns)


def catch_up(engine: Engine, tree: MerkleTree) -> None:
    """Append the stored leaves the tree does not have yet, in seq order."""
    while True:
        with engine.connect() as conn:
            rows = conn.execute(
                select(t.merkle_leaves.c.seq, t.merkle_leaves.c.leaf_hash)
                .where(t.merkle_leaves.c.seq > tree.size)
                .order_by(t.merkle_leaves.c.seq)
                .limit(CATCH_UP_CHUNK)
            ).all()
        for seq, leaf in rows:
            if seq != tree.size + 1:
                return  # a gap: a concurrent commit not yet visible; try again next time
            tree.append(bytes.fromhex(leaf))
        if len(rows) < CATCH_UP_CHUNK:
            return


def head_json(row: Any) -> dict[str, Any]:
    return {
        "tree_size": row.tree_size,
        "root_hash": row.root_hash,
        "timestamp_ms": row.timestamp_ms,
        "signature": row.signature,
        "key_id": row.key_id,
    }


class TreeHeadSigner:
    """Signs and publishes a new tree head whenever the journal has grown.

    With `key_path`, a key rotated on disk (`charity-ledger keys rotate`) is
    picked up at the next turn: registered, published, and signing from then on.
    """

    def __init__(
        self,
        engine: Engine,
        key: Ed25519PrivateKey,
        output: OutputPort,
        topics: Topics,
        key_path: Path | None = None,
        guard: Callable[[Connection], None] | None = None,
    ) -> None:
        self.engine = engine
        self.guard = guard  # the writer lease's check, inside the head's transaction
        self.output = output
        self.topics = topics
        self.tree = MerkleTree()
        self.codec = EventCodec()
        self.key_path = key_path
        self._key_file = _identity(key_path)
        self.key = key
        self.key_id = register_public_key(engine, key, ev.utc_now_ms())
        self._key_sent = False

    def _follow_rotation(self) -> None:
        if self.key_path is None or _identity(self.key_path) == self._key_file:
            return
        self.key = load_or_create_signing_key(self.key_path, create=False)
        self._key_file = _identity(self.key_path)
        self.key_id = register_public_key(self.engine, self.key, ev.utc_now_ms())
        self._key_sent = False
        log.info("signing tree heads with the rotated key %s", self.key_id)

    def _send_key(self) -> None:
        """Put the signing key on the checkpoints topic, so a mirror of it can verify heads."""
        with self.engine.connect() as conn:
            row = conn.execute(select(t.signing_keys).where(t.signing_keys.c.key_id == self.key_id)).one()
        published = ev.SigningKeyPublished(
            event_id=ev.derived_id("signing-key", row.key_id),
            occurred_at=ev.utc_now_ms(),
            actor="ledger",
            project_id="ledger",
            key_id=row.key_id,
            algorithm=row.algorithm,
            public_key=row.public_key,
            valid_from=row.valid_from,
        )
        self.output.send(self.topics.checkpoints, b"ledger", self.codec.encode(published))
        self.output.flush()
        self._key_sent = True

    def publish_if_grown(self) -> TreeHead | None:
        """Send the stored heads the broker has not acknowledged yet, then sign a new head
        if the journal has grown since the last one (stored first, then sent).

        A head is stored before it is sent, so a head whose send failed is still in
        `tree_heads`: the 'tree-heads' watermark says how far the broker has
        acknowledged them, and the next call sends what lies beyond it.
        """
        self._follow_rotation()
        if not self._key_sent:
            self._send_key()
        self._send_unsent()
        catch_up(self.engine, self.tree)
        with self.engine.connect() as conn:
            latest = conn.execute(
                select(t.tree_heads.c.tree_size, t.tree_heads.c.timestamp_ms)
                .order_by(t.tree_heads.c.tree_size.desc())
                .limit(1)
            ).first()
        if latest is not None:
            _observe(latest.tree_size, latest.timestamp_ms)
        if self.tree.size == 0 or (latest is not None and latest.tree_size >= self.tree.size):
            return None
        now = ev.utc_now_ms()
        head = TreeHead(size=self.tree.size, root=self.tree.root(), timestamp_ms=int(now.timestamp() * 1000))
        signature = base64.b64encode(sign_tree_head(self.key, head)).decode()
        with self.engine.begin() as conn:
            if self.guard is not None:
                self.guard(conn)
            conn.execute(
                t.tree_heads.insert().values(
                    tree_size=head.size,
                    root_hash=head.root.hex(),
                    timestamp_ms=head.timestamp_ms,
                    signature=signature,
                    key_id=self.key_id,
                )
            )
        _observe(head.size, head.timestamp_ms)
        self._send_unsent()
        return head

    def _send_unsent(self) -> None:
        with self.engine.connect() as conn:
            sent = read_watermark(conn, TREE_HEADS_STREAM)
            unsent = conn.execute(
                select(t.tree_heads).where(t.tree_heads.c.tree_size > sent).order_by(t.tree_heads.c.tree_size)
            ).all()
        if not unsent:
            return
        for row in unsent:
            published = ev.TreeHeadPublished(
                event_id=ev.derived_id("tree-head", str(row.tree_size)),
                occurred_at=ev.utc_now_ms(),
                actor="ledger",
                project_id="ledger",
                tree_size=row.tree_size,
                root_hash=row.root_hash,
                timestamp_ms=row.timestamp_ms,
                signature=row.signature,
                key_id=row.key_id or self.key_id,
            )
            self.output.send(self.topics.checkpoints, b"ledger", self.codec.encode(published))
        self.output.flush()
        with self.engine.begin() as conn:
            write_watermark(conn, TREE_HEADS_STREAM, unsent[-1].tree_size)


def _observe(size: int, timestamp_ms: int) -> None:
    """The latest signed head, for the alert on a journal that grows without being signed."""
    metrics.TREE_HEAD_SIZE.set(size)
    metrics.TREE_HEAD_TIMESTAMP.set(timestamp_ms / 1000)
