"""The writer lease on both databases: one holder at a time, and who may take it over when."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from services.ledger.adapters import tables as t
from services.ledger.adapters.lease import WriterLease, database_clock_ms, holder_name
from services.ledger.adapters.store import LedgerStore
from services.platform.broken import LeaseLost
from services.platform.db import make_engine
from services.platform.scratch_postgres import scratch_database
from tests.fixtures.ledger import eventually

pytestmark = pytest.mark.integration  # needs the PostgreSQL server


def expired(store: LedgerStore) -> bool:
    """Whether the lease has run out by the database's own clock."""
    with store.engine.connect() as conn:
        ends = conn.scalar(select(t.writer_lease.c.expires_at_ms))
        return bool(conn.scalar(select(database_clock_ms(store.engine))) > ends)


def test_one_holder_at_a_time_and_a_lost_lease_fails_the_transaction(store: LedgerStore) -> None:
    first = WriterLease(store.engine, "ledger-1@elsewhere:1", ttl_ms=300)
    second = WriterLease(store.engine, "ledger-1@elsewhere:2", ttl_ms=300)
    assert first.try_acquire() and first.held
    assert not second.try_acquire()  # held, and its holder is on another host
    first.renew()
    assert not second.try_acquire()
    # The first is paused past its lease: the second takes over once it runs out.
    eventually(second.try_acquire, timeout=10, what="the second taking the expired lease")
    lost = r"ledger-1@elsewhere:1 lost the writer lease \(epoch 1\)"
    with pytest.raises(LeaseLost, match=lost), store.engine.begin() as conn:
        first.check(conn)
    assert not first.held
    with store.engine.begin() as conn:
        second.check(conn)  # the holder's own check extends the lease
        assert conn.scalar(select(t.writer_lease.c.epoch)) == 2


def test_a_holder_whose_lease_ran_out_unchallenged_still_holds_it(store: LedgerStore) -> None:
    lease = WriterLease(store.engine, "ledger-1@elsewhere:1", ttl_ms=100)
    assert lease.try_acquire()
    # The database was away for longer than the lease, say, and nobody took it over.
    eventually(lambda: expired(store), timeout=10, what="the lease running out")
    lease.renew()
    assert lease.held


def test_a_released_lease_or_one_whose_process_is_gone_is_taken_at_once(store: LedgerStore) -> None:
    first = WriterLease(store.engine, "ledger-1@elsewhere:1", ttl_ms=60_000)
    assert first.try_acquire()
    first.release()
    gone = subprocess.Popen(["true"])
    gone.wait()
    on_this_host = WriterLease(store.engine, holder_name("ledger-1").rsplit(":", 1)[0] + f":{gone.pid}")
    assert on_this_host.try_acquire()  # released: no need to wait a minute
    successor = WriterLease(store.engine, holder_name("ledger-1"), ttl_ms=60_000)
    assert successor.try_acquire()  # its holder's process no longer exists on this host
    with pytest.raises(LeaseLost):
        on_this_host.renew()


def test_a_holder_paused_inside_its_transaction_is_cut_off_and_the_standby_takes_over(
    postgres_url: str,
) -> None:
    """A holder paused (SIGSTOP) in a batch holds the lease row's lock, since its check comes
    first in the batch's transaction: the server ends that transaction once it has sat idle for
    the lease's length, and the standby, waiting on the lock, then takes the lease."""
    with scratch_database(postgres_url, "lease") as url:
        LedgerStore(make_engine(url)).migrate()
        holder_engine = make_engine(url, idle_transaction_timeout_ms=1_000)
        standby_engine = make_engine(url, idle_transaction_timeout_ms=1_000)
        first = WriterLease(holder_engine, "ledger-1@elsewhere:1", ttl_ms=300)
        second = WriterLease(standby_engine, "ledger-1@elsewhere:2", ttl_ms=300)
        assert first.try_acquire()
        paused = holder_engine.connect()
        paused.begin()
        first.check(paused)  # and then nothing: the process is stopped mid-batch
        pool = ThreadPoolExecutor(1)
        taking = pool.submit(eventually, second.try_acquire, 10, "the standby taking the lease")
        try:
            taking.result(timeout=20)
        except TimeoutError:
            paused.close()  # lets the standby's blocked UPDATE go, so that the test can end
            raise
        finally:
            pool.shutdown()
        assert second.held
        with pytest.raises(DBAPIError, match="idle-in-transaction timeout"):
            paused.commit()  # it wakes: nothing it wrote survives
        paused.close()
        holder_engine.dispose()
        standby_engine.dispose()
