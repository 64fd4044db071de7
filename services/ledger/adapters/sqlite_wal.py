"""SQLite WAL checkpoints in a thread of their own, off the ledger's commit path.

The ledger's writer engine turns SQLite's automatic checkpoints off
(`make_engine(..., background_checkpoints=True)`); this thread copies the WAL
back into the database file instead. The sqlite3 module releases the GIL while
SQLite works, so the copy and its fsync use the machine's other core while the
batch loop goes on. Durability does not depend on it: a commit is durable once
its WAL frames are synced (synchronous=FULL); a checkpoint only moves them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from services.ledger import metrics

log = logging.getLogger(__name__)

# A passive checkpoint never waits for the writer; under constant load it can
# fall behind, and the WAL then grows. Past this many pages (about 256 MiB of
# 4 KiB pages) the next checkpoint is RESTART: it waits for the batch being
# committed, holds the next one back until the WAL is copied, and lets the
# writer start the WAL over from its beginning.
RESTART_AFTER_FRAMES = 65_536


@dataclass(frozen=True)
class CheckpointResult:
    busy: bool  # could not finish: a reader or the writer was in the way
    wal_frames: int  # pages in the WAL when it ran
    checkpointed_frames: int  # of those, copied into the database file


class WalCheckpointer:
    def __init__(self, engine: Engine, restart_after_frames: int = RESTART_AFTER_FRAMES) -> None:
        self.engine = engine
        self.restart_after_frames = restart_after_frames
        self._backlog = 0  # frames the last checkpoint left behind

    def checkpoint(self) -> CheckpointResult:
        mode = "RESTART" if self._backlog > self.restart_after_frames else "PASSIVE"
        # A raw DBAPI connection: it is in autocommit mode (isolation_level=None),
        # so no BEGIN IMMEDIATE is issued and the write lock is not taken.
        conn = self.engine.raw_connection()
        try:
            cur = conn.cursor()
            busy, frames, done = cur.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            cur.close()
        finally:
            conn.close()
        result = CheckpointResult(bool(busy), max(frames, 0), max(done, 0))
        self._backlog = result.wal_frames - result.checkpointed_frames
        metrics.WAL_FRAMES.set(result.wal_frames)
        return result

    def run(self, stop: threading.Event, every_s: float) -> None:
        while not stop.wait(every_s):
            try:
                self.checkpoint()
            except Exception:
                log.exception("WAL checkpoint failed; retrying at the next interval")
