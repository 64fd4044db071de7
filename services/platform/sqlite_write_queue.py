"""SQLite's writers wait in a queue the kernel keeps, so the next starts the moment one ends.

SQLite has one write lock per database. A writer that finds it taken does not wait on
it: the busy handler sleeps (1, 2, 5, 10 … 100 ms, longer each time) and asks again.
Under steady load from several writers (the ledger's batches and the API's payment
writer, each in its own process) every wait overshoots the release, and the lock sits
free while the writers sleep: at 200 payment notifications a second the ledger spent
41% of its time in BEGIN IMMEDIATE, with the machine's cores a quarter idle.

So a writing connection first takes an exclusive `flock` on a file beside the database
(`<database>-writers`): a blocked `flock` is woken by the kernel as soon as the holder
lets go, with no polling. Only then does it BEGIN IMMEDIATE, which finds SQLite's lock
free. The queue is a courtesy, not the guarantee: a writer outside it (the sqlite3
shell, a tool) still takes SQLite's lock, and the others then wait in the busy handler
as before. A process that dies lets go of its `flock` with its files. The wait has no
time limit (a blocked `flock` cannot be given one), where the busy handler gives up after
the connection's timeout: a writer paused inside a transaction holds the others until it
goes on or dies.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

# Who is at the head of each queue, by thread: (queue, thread id) → its connection.
# Weak, so that a connection dropped in a transaction does not count any more.
_heads: dict[tuple[str, int], weakref.ref[QueuedWriter]] = {}


def queue_path(database: str) -> str | None:
    """The queue file of a database file; None for one in memory."""
    if database.startswith("file:"):
        parts = urlsplit(database)
        if "mode=memory" in parts.query:
            return None
        database = unquote(parts.path)
    if database in ("", ":memory:"):
        return None
    return os.path.abspath(database) + "-writers"


class QueuedWriter(sqlite3.Connection):
    """A connection (sqlite3's `factory`) whose write transactions queue first; its
    commit and rollback leave the queue."""

    def __init__(self, database: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._queue = queue_path(str(database))
        # A file object, not a bare descriptor: a connection dropped without being closed
        # closes its queue file as it is collected, which lets go of the lock.
        self._queue_file: BinaryIO | None = None
        self._head_of: tuple[str, int] | None = None  # (queue, the thread that joined it)

    def join_queue(self) -> None:
        """Wait for every writer ahead (in this process or another) to end its transaction."""
        if self._queue is None or self._head_of is not None:
            return
        key = (self._queue, threading.get_ident())
        ahead = _heads.get(key)
        other = ahead() if ahead is not None else None
        if other is not None and other._head_of == key:
            # Its turn would never come: this thread's other transaction waits on it.
            raise sqlite3.OperationalError(
                f"this thread already has a write transaction open on {self._queue.removesuffix('-writers')}"
            )
        if self._queue_file is None:
            self._queue_file = open(self._queue, "ab")  # noqa: SIM115 (closed in close)
        fcntl.flock(self._queue_file.fileno(), fcntl.LOCK_EX)
        self._head_of = key
        _heads[key] = weakref.ref(self)

    def leave_queue(self) -> None:
        if self._head_of is not None and self._queue_file is not None:
            # Off the head first, then unlock: once unlocked, the thread that joined (when
            # another thread ends this transaction) may join again at once, as the head.
            if (ahead := _heads.get(self._head_of)) is not None and ahead() is self:
                _heads.pop(self._head_of, None)
            self._head_of = None
            fcntl.flock(self._queue_file.fileno(), fcntl.LOCK_UN)

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.leave_queue()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave_queue()

    def close(self) -> None:
        self.leave_queue()
        if self._queue_file is not None:
            self._queue_file.close()
            self._queue_file = None
        super().close()
