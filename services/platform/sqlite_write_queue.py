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
as before. A process that dies lets go of its `flock` with its files.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

_held = threading.local()  # the queues this thread is at the head of


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
        self._queue_fd: int | None = None
        self._at_head = False
        self._holders: set[str] = set()  # the joining thread's queues (it may end elsewhere)

    def join_queue(self) -> None:
        """Wait for every writer ahead (in this process or another) to end its transaction."""
        if self._queue is None or self._at_head:
            return
        held: set[str] = _held.__dict__.setdefault("queues", set())
        if self._queue in held:
            # Its turn would never come: this thread's other transaction waits on it.
            raise sqlite3.OperationalError(
                f"this thread already has a write transaction open on {self._queue[: -len('-writers')]}"
            )
        if self._queue_fd is None:
            self._queue_fd = os.open(self._queue, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._queue_fd, fcntl.LOCK_EX)
        self._at_head, self._holders = True, held
        held.add(self._queue)

    def leave_queue(self) -> None:
        if self._at_head and self._queue_fd is not None:
            fcntl.flock(self._queue_fd, fcntl.LOCK_UN)
            self._at_head = False
            self._holders.discard(self._queue)

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
        if self._queue_fd is not None:
            os.close(self._queue_fd)
            self._queue_fd = None
        super().close()
