"""Who commits a prepared batch: the ledger's own thread, or its writer process.

The ledger is one Python process bound by one core, and a batch's work splits
in two halves of about the same size: deciding (fetch, decode, validate,
dedup, the rules, the hash chain) and committing (the database transaction,
then building, encoding and publishing the outputs). `ProcessCommitter` runs
the second half in a child process, so batch N commits there while batch N+1
is decided here, on the machine's other core.

At most one batch is in flight: `submit` first waits for the batch before it.
A batch the writer could not commit fails the next `submit` (or `settle`), and
nothing after it has been sent; the caller resets to the stored offsets.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Protocol

from services.contracts.topics import Topics
from services.ledger.checkpoint import Checkpoint
from services.ledger.db import make_engine
from services.ledger.domain.state import ProjectTotals
from services.ledger.outputs import OutputPublisher
from services.ledger.ports import OutputPort
from services.ledger.store import LedgerStore
from services.platform.rdkafka_output import OutputBroken

log = logging.getLogger(__name__)
START_TIMEOUT_S = 60.0


class BatchFailed(RuntimeError):
    """A submitted batch was not committed (nothing of it was written)."""


class WriterGone(OutputBroken):
    """The writer process is gone; the ledger must restart."""


class Committer(Protocol):
    def submit(self, checkpoint: Checkpoint) -> list[int]:
        """Commit (or start committing) the batch; return the numbers of batches now committed."""

    def settle(self) -> list[int]:
        """Wait until every submitted batch is committed; return their numbers."""

    def publish_totals(self, projects: list[ProjectTotals]) -> None: ...

    def close(self) -> None: ...


class InlineCommitter:
    """Commits on the caller's thread: the batch is written when `submit` returns."""

    def __init__(self, store: LedgerStore, publisher: OutputPublisher) -> None:
        self.store = store
        self.publisher = publisher

    def submit(self, checkpoint: Checkpoint) -> list[int]:
        checkpoint.commit(self.store, self.publisher)
        return [checkpoint.number]

    def settle(self) -> list[int]:
        return []

    def publish_totals(self, projects: list[ProjectTotals]) -> None:
        self.publisher.totals(projects)
        self.publisher.flush()

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class WriterConfig:
    """What the writer process builds its store and publisher from (picklable)."""

    database_url: str
    topic_prefix: str
    make_output: Callable[[], OutputPort]


class ProcessCommitter:
    def __init__(self, config: WriterConfig) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process with client threads
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=run_writer, args=(child, config), name="charity-ledger-writer", daemon=True
        )
        self._process.start()
        child.close()
        self._pending: int | None = None  # the number of the batch in flight
        if not self._conn.poll(START_TIMEOUT_S):
            self._process.kill()
            raise WriterGone(f"the writer process did not start within {START_TIMEOUT_S:.0f}s")
        self._receive()  # "ready", or why not

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def submit(self, checkpoint: Checkpoint) -> list[int]:
        done = self.settle()
        self._send(("batch", checkpoint.number, checkpoint))
        self._pending = checkpoint.number
        return done

    def settle(self) -> list[int]:
        if self._pending is None:
            return []
        number, self._pending = self._pending, None
        self._receive()
        return [number]

    def publish_totals(self, projects: list[ProjectTotals]) -> None:
        self.settle()
        self._send(("totals", 0, projects))
        self._receive()

    def close(self) -> None:
        try:
            self.settle()
        finally:
            if self._process.is_alive():
                self._send(("close", 0, None))
                self._process.join(30)
            if self._process.is_alive():
                self._process.kill()
            self._conn.close()

    def _send(self, message: tuple[str, int, Any]) -> None:
        try:
            self._conn.send(message)
        except (BrokenPipeError, EOFError, OSError) as exc:
            raise self._gone() from exc

    def _receive(self) -> None:
        try:
            kind, number, detail = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._gone() from exc
        if kind == "broken":
            raise OutputBroken(detail)
        if kind == "failed":
            raise BatchFailed(f"batch {number} was not committed: {detail}")

    def _gone(self) -> WriterGone:
        self._process.join(1)
        return WriterGone(f"the writer process is gone (exit code {self._process.exitcode})")


def _die_with_parent() -> None:
    """Linux: be killed when the ledger process dies, even by SIGKILL.

    A writer left behind could commit a batch after a restarted ledger has read
    the stored offsets; dying with the parent keeps one writer per ledger.
    """
    PR_SET_PDEATHSIG = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class WriterLoop:
    """The writer process's side of the conversation, one message at a time."""

    def __init__(self, store: LedgerStore, publisher: OutputPublisher) -> None:
        self.store = store
        self.publisher = publisher

    def handle(self, kind: str, number: int, payload: Any) -> tuple[str, int, str]:
        try:
            if kind == "batch":
                payload.commit(self.store, self.publisher)
            elif kind == "totals":
                self.publisher.totals(payload)
                self.publisher.flush()
            else:
                raise ValueError(f"unknown message {kind!r}")
        except OutputBroken as exc:
            return ("broken", number, str(exc))
        except Exception as exc:
            log.exception("batch %d failed in the writer", number)
            return ("failed", number, f"{type(exc).__name__}: {exc}")
        return ("ok", number, "")


def run_writer(conn: Connection, config: WriterConfig) -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the ledger stops it, after its last batch
    logging.basicConfig(level=logging.INFO, format="%(asctime)s ledger-writer %(levelname)s %(message)s")
    try:
        store = LedgerStore(make_engine(config.database_url))
        output = config.make_output()
    except Exception as exc:
        conn.send(("broken", 0, f"the writer could not start: {type(exc).__name__}: {exc}"))
        return
    loop = WriterLoop(store, OutputPublisher(output, Topics(config.topic_prefix)))
    conn.send(("ready", 0, ""))
    started = time.monotonic()
    while True:
        try:
            kind, number, payload = conn.recv()
        except EOFError:
            break  # the ledger is gone
        if kind == "close":
            break
        reply = loop.handle(kind, number, payload)
        conn.send(reply)
        if reply[0] == "broken":
            break
    close = getattr(output, "close", None)
    if close is not None:
        close()
    log.info("writer stopped after %.0fs", time.monotonic() - started)
