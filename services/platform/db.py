"""Engines for the service databases: SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event

from services.platform.sqlite_write_queue import QueuedWriter

WRITER_CACHE_KIB = 65_536


def make_engine(
    url: str,
    *,
    writer: bool = True,
    background_checkpoints: bool = False,
    idle_transaction_timeout_ms: int | None = None,
    **kwargs: Any,
) -> Engine:
    """An engine; readers (the API) pass writer=False so they never take SQLite's write lock.

    background_checkpoints: on SQLite, commits no longer copy the WAL back into
    the database file; whoever asks for this must run a WalCheckpointer.
    idle_transaction_timeout_ms: on PostgreSQL, the server ends the session of a
    transaction that waits this long for its client's next statement (a process
    paused or cut off in it), which lets go of its locks. SQLite has no server to do it.
    """
    if url.startswith("sqlite"):
        return _sqlite_engine(url, writer=writer, background_checkpoints=background_checkpoints, **kwargs)
    if idle_transaction_timeout_ms is not None:
        options = f"-c idle_in_transaction_session_timeout={idle_transaction_timeout_ms}"
        kwargs["connect_args"] = {**kwargs.get("connect_args", {}), "options": options}
    return create_engine(url, pool_pre_ping=True, **kwargs)


def make_probe_engine(url: str) -> Engine:
    """An engine for readiness checks, which must answer within a second: it never
    waits for SQLite's write lock (a reader, in WAL mode) nor long for a PostgreSQL
    server that does not answer."""
    if url.startswith("sqlite"):
        return make_engine(url, writer=False)
    return create_engine(url, pool_pre_ping=True, pool_timeout=1, connect_args={"connect_timeout": 1})


def _sqlite_engine(url: str, *, writer: bool, background_checkpoints: bool, **kwargs: Any) -> Engine:
    # pysqlite's own transaction handling would start transactions lazily and
    # as DEFERRED; the ledger needs BEGIN IMMEDIATE so that two writers queue
    # on the lock up front instead of failing half-way with SQLITE_BUSY.
    connect_args: dict[str, Any] = {"isolation_level": None, "timeout": 30}
    if writer:
        connect_args["factory"] = QueuedWriter  # see services/platform/sqlite_write_queue.py
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed batch (entries + offsets) survives power loss too.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        if writer:
            # The journal's unique index on random event ids is written all over; a
            # 64 MiB page cache (SQLite's default is 2 MiB) keeps more of it at hand.
            cur.execute(f"PRAGMA cache_size=-{WRITER_CACHE_KIB}")
        if background_checkpoints:
            # By default the commit that fills the WAL past 1,000 pages copies them
            # into the database file and fsyncs it before returning: the ledger's
            # one busy thread waited for that on every second or third batch.
            cur.execute("PRAGMA wal_autocheckpoint=0")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if not writer:
            conn.exec_driver_sql("BEGIN")
            return
        queued: QueuedWriter = conn.connection.dbapi_connection
        queued.join_queue()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            queued.leave_queue()
            raise

    return engine
