"""SQLite's writers queue on a file lock: the next begins when one ends, in any process."""

from __future__ import annotations

import fcntl
import gc
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from services.platform.db import make_engine
from services.platform.sqlite_write_queue import QueuedWriter, queue_path

# A writer in another process: begins a write transaction, says so, commits when told.
OTHER_PROCESS = """
import sys
from services.platform.db import make_engine
engine = make_engine(sys.argv[1])
with engine.begin() as conn:
    conn.exec_driver_sql("INSERT INTO t VALUES (2)")
    print("began", flush=True)
    sys.stdin.readline()
print("committed", flush=True)
"""
NOT_BEFORE_S = 0.3  # how long a writer that must wait is watched not beginning


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url = f"sqlite:///{tmp_path / 'queued.db'}"
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    yield url, engine
    engine.dispose()


def queue_taken(url: str) -> bool:
    """Whether some writer holds the database's queue (its `flock`), seen from a file
    description of its own, as another process would see it."""
    path = queue_path(url.removeprefix("sqlite:///"))
    assert path is not None
    with open(path, "ab") as queue:
        try:
            fcntl.flock(queue.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(queue.fileno(), fcntl.LOCK_UN)
        return False


def begin_in_thread(engine: Engine, began: threading.Event, done: threading.Event) -> threading.Thread:
    def write() -> None:
        with engine.begin() as conn:
            began.set()
            conn.exec_driver_sql("INSERT INTO t VALUES (3)")
        done.set()

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_a_writer_begins_when_the_one_ahead_commits_or_rolls_back(database: tuple[str, Engine]) -> None:
    url, engine = database
    for end in ("commit", "rollback"):
        holder = engine.connect()
        holder.begin()
        assert queue_taken(url)
        began, done = threading.Event(), threading.Event()
        thread = begin_in_thread(engine, began, done)
        assert not began.wait(NOT_BEFORE_S), "began while another write transaction was open"
        getattr(holder, end)()
        assert began.wait(5) and done.wait(5)
        holder.close()
        thread.join()
        assert not queue_taken(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 2


def test_the_queue_holds_across_processes(database: tuple[str, Engine]) -> None:
    url, engine = database
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER_PROCESS, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert other.stdin is not None and other.stdout is not None
    try:
        assert other.stdout.readline().strip() == "began"
        assert queue_taken(url)  # by the other process
        began, done = threading.Event(), threading.Event()
        thread = begin_in_thread(engine, began, done)
        assert not began.wait(NOT_BEFORE_S), "began while the other process's transaction was open"
        other.stdin.write("\n")
        other.stdin.flush()
        assert other.stdout.readline().strip() == "committed"
        assert done.wait(5)
        thread.join()
        assert not queue_taken(url)
    finally:
        other.kill()
        other.wait()
    with engine.connect() as conn:
        assert sorted(conn.exec_driver_sql("SELECT x FROM t").scalars()) == [2, 3]


def test_a_second_write_transaction_in_one_thread_fails_at_once_instead_of_waiting_forever(
    database: tuple[str, Engine],
) -> None:
    url, engine = database
    other_engine = make_engine(url)
    try:
        with (
            engine.begin(),
            pytest.raises(sqlite3.OperationalError, match="already has a write transaction open"),
            other_engine.begin(),
        ):
            pass
        with other_engine.begin() as conn:  # the queue was left: it writes now
            conn.exec_driver_sql("INSERT INTO t VALUES (4)")
    finally:
        other_engine.dispose()


def test_a_transaction_ended_in_another_thread_leaves_the_queue_for_the_thread_that_began_it(
    database: tuple[str, Engine],
) -> None:
    _, engine = database
    holder = engine.connect()
    holder.begin()
    ended = threading.Thread(target=holder.rollback)
    ended.start()
    ended.join()
    holder.close()
    with engine.begin() as conn:  # this thread is no longer in a write transaction
        conn.exec_driver_sql("INSERT INTO t VALUES (5)")


def test_a_connection_dropped_in_a_transaction_lets_go_of_the_queue(database: tuple[str, Engine]) -> None:
    url, engine = database
    dropped = sqlite3.connect(url.removeprefix("sqlite:///"), factory=QueuedWriter, isolation_level=None)
    dropped.join_queue()
    dropped.execute("BEGIN IMMEDIATE")
    del dropped  # neither committed, rolled back nor closed
    gc.collect()
    began, done = threading.Event(), threading.Event()
    begin_in_thread(engine, began, done).join(10)
    assert done.is_set(), "the dropped connection still holds the queue"


def test_readers_and_databases_in_memory_do_not_queue(tmp_path: Path) -> None:
    assert queue_path(":memory:") is None and queue_path("file:x?mode=memory&cache=shared") is None
    assert queue_path(str(tmp_path / "a.db")) == str(tmp_path / "a.db") + "-writers"
    reader = make_engine(f"sqlite:///{tmp_path / 'r.db'}", writer=False)
    with reader.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    reader.dispose()
    assert not (tmp_path / "r.db-writers").exists()
