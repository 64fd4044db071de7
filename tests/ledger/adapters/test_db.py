"""SQLite engines: the ledger's writer gets a large page cache, readers keep SQLite's default."""

from __future__ import annotations

from pathlib import Path

from services.ledger.adapters.db import WRITER_CACHE_KIB, make_engine


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
