"""SQLite engines: the writer's page cache, readers' defaults, a probe that never waits."""

from __future__ import annotations

import threading
from pathlib import Path

from services.platform.db import WRITER_CACHE_KIB, make_engine, make_probe_engine
from services.platform.health import database_check


def cache_size(url: str, writer: bool) -> int:
    engine = make_engine(url, writer=writer)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA cache_size").scalar_one())
    finally:
        engine.dispose()


def test_only_the_writer_gets_the_large_page_cache(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    assert cache_size(url, writer=True) == -WRITER_CACHE_KIB
    assert cache_size(url, writer=False) == -2000  # SQLite's default: about 2 MiB


def test_the_readiness_probe_does_not_wait_for_a_held_write_lock(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'locked.db'}"
    writer = make_engine(url)
    with writer.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    holder = writer.connect()
    holder.begin()  # BEGIN IMMEDIATE: the write lock, held until the end of the test
    holder.exec_driver_sql("INSERT INTO t VALUES (1)")
    answered = threading.Event()

    def probe() -> None:
        database_check(make_probe_engine(url))()
        answered.set()

    threading.Thread(target=probe, daemon=True).start()
    try:
        # The writer's own engine would wait its 30 s busy timeout here.
        assert answered.wait(5), "the probe waited for the write lock"
    finally:
        holder.rollback()
        holder.close()
