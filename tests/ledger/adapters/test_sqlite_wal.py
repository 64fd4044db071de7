"""Background WAL checkpoints: commits leave the WAL alone; the checkpointer copies it back."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from services.ledger.adapters.sqlite_wal import WalCheckpointer
from services.platform.db import make_engine

ROW = "x" * 3000  # about one 4 KiB page per row


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}", background_checkpoints=True)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE blobs (body TEXT NOT NULL)")
    yield engine
    engine.dispose()


def write_pages(engine: Engine, rows: int) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO blobs (body) VALUES (?)", [(ROW,)] * rows)


def test_commits_do_not_checkpoint_and_the_checkpointer_copies_everything(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
    for _ in range(3):  # 3 commits of ~600 pages: SQLite's default would checkpoint at 1,000
        write_pages(engine, 600)
    checkpointer = WalCheckpointer(engine)
    result = checkpointer.checkpoint()
    assert result.wal_frames > 1_800
    assert result.checkpointed_frames == result.wal_frames and not result.busy
    write_pages(engine, 10)  # everything was copied, so this write starts the WAL over
    after = checkpointer.checkpoint()
    assert 0 < after.wal_frames < 100


def test_a_checkpoint_left_behind_is_followed_by_one_that_waits_and_finishes(engine: Engine) -> None:
    write_pages(engine, 50)
    reader = engine.raw_connection()
    cur = reader.cursor()
    cur.execute("BEGIN")
    cur.execute("SELECT count(*) FROM blobs").fetchone()  # holds a snapshot from before the next write
    write_pages(engine, 500)
    checkpointer = WalCheckpointer(engine, restart_after_frames=100)
    behind = checkpointer.checkpoint()  # passive: cannot copy past what the reader still reads
    assert behind.checkpointed_frames < behind.wal_frames

    finished = threading.Timer(0.3, lambda: (cur.execute("COMMIT"), reader.close()))
    finished.start()
    try:
        caught_up = checkpointer.checkpoint()  # RESTART: waits for the reader, then copies all
    finally:
        finished.join()
    assert not caught_up.busy
    assert caught_up.checkpointed_frames == caught_up.wal_frames == behind.wal_frames
