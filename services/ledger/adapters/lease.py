"""The writer lease: exactly one ledger writes at a time, enforced by the database.

One row says which ledger holds the right to write, under which epoch, until
when, by the database's own clock (one clock for every instance). The holder
renews it every second. Every batch transaction checks it first (`check`,
inside the transaction): a ledger that lost the lease, because it was paused or
cut off past the lease's end and a standby took over, commits nothing. A standby
waits, taking the lease once it has expired; with a 5 s lease and a poll a second
it takes over within about 6 s of the holder's death, at once when the holder was
a process on its own host that is gone (a restart, or a standby beside the ledger).

The check locks the lease row until the batch commits, so a holder paused inside a
batch would keep a standby's UPDATE waiting for as long as the pause lasts: on
PostgreSQL the ledger's sessions end after TTL_MS idle in a transaction (see
services/ledger/main.py), which releases the row.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

from sqlalchemy import Engine, literal_column, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from services.ledger.adapters import tables as t
from services.platform.broken import LeaseLost

log = logging.getLogger(__name__)
TTL_MS = 5_000
RENEW_EVERY_S = 1.0


def database_clock_ms(engine: Engine) -> ColumnElement[int]:
    """The database's clock, in milliseconds since the epoch."""
    if engine.dialect.name == "postgresql":
        return literal_column("(extract(epoch from clock_timestamp()) * 1000)::bigint")
    return literal_column("CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)")


def holder_name(instance_id: str) -> str:
    """Who holds the lease: the instance, and the host and process it runs as."""
    return f"{instance_id}@{socket.gethostname()}:{os.getpid()}"


def _gone(holder: str) -> bool:
    """Whether `holder` names a process of this host that does not exist any more."""
    host, _, pid = holder.rpartition("@")[2].rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, as another user's
    return False


class WriterLease:
    def __init__(self, engine: Engine, holder: str, ttl_ms: int = TTL_MS) -> None:
        self.engine = engine
        self.holder = holder
        self.ttl_ms = ttl_ms
        self.epoch: int | None = None  # set while held
        self._now = database_clock_ms(engine)

    @property
    def held(self) -> bool:
        return self.epoch is not None

    def try_acquire(self) -> bool:
        """Take the lease if it has expired, is this ledger's already, or its holder was a
        process on this host that no longer exists (a restart need not wait out the lease)."""
        lease = t.writer_lease
        with self.engine.begin() as conn:
            current = conn.execute(select(lease.c.holder, lease.c.epoch).where(lease.c.id == 1)).one()
            free = (lease.c.expires_at_ms < self._now) | (lease.c.holder == self.holder)
            if _gone(current.holder):
                free = free | ((lease.c.holder == current.holder) & (lease.c.epoch == current.epoch))
            taken = conn.execute(
                update(lease)
                .where(lease.c.id == 1, free)
                .values(holder=self.holder, epoch=lease.c.epoch + 1, expires_at_ms=self._now + self.ttl_ms)
            )
            if taken.rowcount != 1:
                return False
            self.epoch = int(conn.scalar(select(lease.c.epoch).where(lease.c.id == 1)) or 0)
        log.info("%s holds the writer lease (epoch %d)", self.holder, self.epoch)
        return True

    def wait_for(self, stop: threading.Event, poll_s: float = 1.0) -> bool:
        """As a standby: wait until the lease is ours (True) or `stop` is set (False)."""
        announced = False
        while not stop.is_set():
            if self.try_acquire():
                return True
            if not announced:
                log.info("standing by: another ledger holds the writer lease")
                announced = True
            stop.wait(poll_s)
        return False

    def renew(self) -> None:
        """Extend the lease; raise LeaseLost if another ledger has taken it."""
        with self.engine.begin() as conn:
            self.check(conn)

    def check(self, conn: Connection) -> None:
        """Inside a batch's transaction: extend the lease, or fail the transaction.

        Only another ledger's taking the lease (a new epoch) loses it: a holder
        whose lease ran out while nobody took it over (a database outage longer
        than the lease) still holds it, since nobody else has written.
        """
        lease = t.writer_lease
        kept = conn.execute(
            update(lease)
            .where(lease.c.id == 1, lease.c.holder == self.holder, lease.c.epoch == self.epoch)
            .values(expires_at_ms=self._now + self.ttl_ms)
        )
        if kept.rowcount != 1:
            lost_epoch, self.epoch = self.epoch, None
            raise LeaseLost(
                f"{self.holder} lost the writer lease (epoch {lost_epoch}); another ledger writes now"
            )

    def release(self) -> None:
        """On a clean stop: let a standby take over at once."""
        if self.epoch is None:
            return
        lease = t.writer_lease
        with self.engine.begin() as conn:
            conn.execute(
                update(lease)
                .where(lease.c.id == 1, lease.c.holder == self.holder, lease.c.epoch == self.epoch)
                .values(expires_at_ms=0)
            )
        self.epoch = None
