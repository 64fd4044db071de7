"""The ledger's input read, decoded and validated in a process of its own.

Fetching records (kafka-python unpacks them in Python), Avro decoding and
validation took a third of the batch loop's one busy core (docs/benchmarks.md).
A thread does not help (the GIL); another process does: it is the group
member, reads a batch, decodes it and sends the batch loop `ReadRecord`s over
a pipe, and reads the next batch while the loop applies this one.

The batch loop still decides where reading resumes, since the next offsets
live in its database:
- when the group assigns partitions, the intake asks the loop for their stored
  offsets and waits for the answer (inside its poll, as a rebalance listener);
  the loop answers only after it has committed every batch sent before, as the
  pipe keeps order;
- before partitions are revoked, the intake waits until the loop has committed
  every batch sent before, so another member resumes exactly where this one
  stopped;
- after a failed batch the loop sends new positions: batches already read from
  the old ones carry an older epoch and the loop drops them;
- after each committed batch the loop sends the committed offsets, and the
  intake, the group's member, commits them to Kafka asynchronously (only for
  Kafka's tools to see the lag; a failure is logged and counted, never fatal).
At most `window` batches are read ahead, so a slow database slows reading down
instead of piling batches up in memory.

The intake exits when the ledger closes the pipe, also when the ledger was
killed; if the intake dies, the batch loop raises `IntakeBroken` and the ledger
stops, to be restarted.
"""

from __future__ import annotations

import fcntl
import logging
import multiprocessing
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from services.contracts.topics import Topics
from services.ledger import metrics
from services.ledger.adapters import helper_process
from services.ledger.adapters.kafka_intake import KafkaIntake, make_consumer
from services.ledger.service.gc_tuning import tune_collector
from services.ledger.service.records import IDLE_POLL_MS, Partition, Positions, ReadRecord
from services.platform.broken import IntakeBroken

log = logging.getLogger(__name__)

WINDOW = 2
READY_TIMEOUT_S = 60.0
PIPE_BYTES = 1 << 20

# Messages from the intake to the ledger.
READY, ERROR, BATCH, ASSIGNED, REVOKED = "ready", "error", "batch", "assigned", "revoked"
KAFKA_COMMIT_FAILED = "kafka-commit-failed"
# Messages from the ledger to the intake (and None: stop).
CREDIT, POSITIONS, SEEK, REVOKED_OK = "credit", "positions", "seek", "revoked-ok"
COMMITTED = "committed"


class IntakeProcess:
    """The batch loop's handle on its intake process: where batches come from.

    `resume(partitions)` gives the positions to read the partitions from,
    after an assignment or a failed batch (`service.batch_loop.StoredPositions`).
    """

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: Topics,
        resume: Callable[[list[Partition]], Positions],
        max_records: int = 2000,
        window: int = WINDOW,
        **consumer_config: Any,
    ) -> None:
        self.resume = resume
        self._epoch = 0
        # A seek the intake is owed but that failed (the stored positions could not
        # be read): POSITIONS after an assignment, which the intake waits for, or
        # SEEK after a failed batch. Settled before anything else is read.
        self._owed: str | None = None
        self._assignment: list[Partition] = []
        self._next: dict[Partition, int] = {}  # next offset the batch loop reads, where known
        # Two one-way pipes rather than a socket pair: a pipe's buffer can be widened.
        self._batches, batches_end = multiprocessing.Pipe(duplex=False)
        control_end, self._control = multiprocessing.Pipe(duplex=False)
        _widen(batches_end)
        self._process = helper_process.start(
            "ledger-intake",
            serve,
            (
                control_end,
                batches_end,
                bootstrap,
                group_id,
                topics.prefix,
                consumer_config,
                max_records,
                window,
            ),
        )
        # So that the child's exit reads as end-of-file here, and the ledger's there.
        control_end.close()
        batches_end.close()
        answer = self._receive(READY_TIMEOUT_S)
        if answer is None or answer[0] != READY:
            self.close()
            raise IntakeBroken(answer[1] if answer else f"not ready within {READY_TIMEOUT_S:.0f}s")

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def assignment(self) -> list[Partition]:
        return list(self._assignment)

    def poll(self, timeout_ms: int) -> list[ReadRecord]:
        """The next batch read from the current positions, or [] when none came in time."""
        deadline = time.monotonic() + timeout_ms / 1000
        self._settle()
        while True:
            message = self._receive(max(0.0, deadline - time.monotonic()))
            if message is None:
                return []
            kind = message[0]
            if kind == BATCH:
                self._send((CREDIT,))
                epoch, records, next_offsets = message[1], message[2], message[3]
                if epoch == self._epoch:
                    self._next.update(next_offsets)
                    return records  # type: ignore[no-any-return]
                log.info("dropped a batch of %d records read before the last seek", len(records))
            elif kind == ASSIGNED:
                metrics.PARTITION_ASSIGNMENTS.inc()
                self._assignment = list(message[1])
                self._owed = POSITIONS
                self._settle()
            elif kind == REVOKED:
                self._assignment = []
                self._send((REVOKED_OK,))
            elif kind == KAFKA_COMMIT_FAILED:
                metrics.KAFKA_COMMIT_FAILURES.inc()
            elif kind == ERROR:
                raise IntakeBroken(f"the intake process failed: {message[1]}")

    def rewind(self) -> None:
        """Read the assigned partitions again from `resume`'s positions (after a failed batch).

        If the positions cannot be read now, the seek stays owed: the next `rewind`
        or `poll` tries again before anything else is read.
        """
        if self._owed != POSITIONS:  # the intake waits for that answer; it rewinds too
            self._owed = SEEK
        self._settle()

    def positions(self) -> dict[Partition, int]:
        """Where the batch loop is: the next offset of each partition whose position is known.
        Read from the lag monitor's thread, hence a copy."""
        return dict(self._next)

    def committed(self) -> None:
        """Every batch polled so far is in the database: the intake commits the same
        offsets to Kafka, for Kafka's tools to see (reading never resumes from them)."""
        self._send((COMMITTED, dict(self._next)))

    def close(self, timeout: float = 30.0) -> None:
        """Stop the intake: it leaves the group and exits."""
        helper_process.stop(self._process, self._control, timeout, drain=self._batches)
        self._control.close()
        self._batches.close()

    def _settle(self) -> None:
        """Send the seek the intake is owed, reading the stored positions (which may raise)."""
        if self._owed is None:
            return
        positions = self.resume(self._assignment)
        self._epoch += 1
        self._next = {p: offset for p, offset in positions.items() if offset is not None}
        self._send((self._owed, self._epoch, positions))
        self._owed = None

    def _receive(self, timeout: float) -> Any:
        try:
            if not self._batches.poll(timeout):
                return None
            return self._batches.recv()
        except (EOFError, OSError) as exc:
            raise self._broken("it exited") from exc

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self._control.send(message)
        except OSError as exc:
            raise self._broken(f"cannot reach it: {exc}") from exc

    def _broken(self, what: str) -> IntakeBroken:
        self._process.join(0.1)
        return IntakeBroken(f"the intake process (exit code {self._process.exitcode}): {what}")


def _widen(pipe_end: Connection) -> None:
    """Let the batches pipe hold a whole window of batches (a 2,000-gift batch is
    about 280 kB; Linux pipes hold 64 kB unless widened, up to
    /proc/sys/fs/pipe-max-size, 1 MiB by default).

    With 64 kB the intake's send blocked until the batch loop came to read, and
    the rest of the batch crossed in 64 kB turns of both processes, while the
    batch loop waited. Where widening is refused, batches still cross, slower.
    """
    try:
        fcntl.fcntl(pipe_end.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError as exc:
        log.warning("could not widen the intake's pipe to %d bytes: %s", PIPE_BYTES, exc)


class _Ledger:
    """The intake's ends of the pipes: credits, seeks and the answers it waits for."""

    def __init__(self, control: Connection, batches: Connection, window: int) -> None:
        self.control = control
        self.batches = batches
        self.credits = window
        self.epoch = 0
        self.stopped = False
        self.intake: KafkaIntake | None = None
        self.to_commit: Positions = {}  # offsets the ledger committed, not yet sent to Kafka

    def send(self, message: tuple[Any, ...]) -> None:
        try:
            self.batches.send(message)
        except OSError:  # the ledger is gone
            self.stopped = True

    def handle_waiting(self) -> None:
        while not self.stopped and self.control.poll(0):
            self._handle(self._receive())

    def send_batch(self, epoch: int, records: list[ReadRecord]) -> None:
        while not self.stopped and self.credits == 0:
            self._handle(self._receive())
        if not self.stopped:
            self.credits -= 1
            # Each partition's next offset after this batch (records come in offset
            # order within a partition, so the last one wins), worked out here rather
            # than by the batch loop, whose thread is the ledger's bottleneck.
            next_offsets = {(record[0], record[1]): record[2] + 1 for record in records}
            self.send((BATCH, epoch, records, next_offsets))

    def positions_for(self, partitions: list[Partition]) -> Positions:
        """Called by the rebalance listener: the stored positions, once the ledger answers."""
        self.send((ASSIGNED, partitions))
        while not self.stopped:
            message = self._receive()
            if message is not None and message[0] == POSITIONS:
                self.epoch = message[1]
                return message[2]  # type: ignore[no-any-return]
            self._handle(message)
        return {}  # stopping: nothing read from here on is sent

    def revoked(self) -> None:
        """Called by the rebalance listener: returns once the ledger committed all it was sent."""
        self.send((REVOKED,))
        while not self.stopped:
            message = self._receive()
            if message is not None and message[0] == REVOKED_OK:
                return
            self._handle(message)

    def _receive(self) -> Any:
        try:
            return self.control.recv()
        except (EOFError, OSError):  # the ledger is gone without saying so (killed)
            return None

    def _handle(self, message: Any) -> None:
        if message is None:
            self.stopped = True
        elif message[0] == CREDIT:
            self.credits += 1
        elif message[0] == SEEK:
            self.epoch = message[1]
            assert self.intake is not None
            self.intake.seek(message[2])
        elif message[0] == COMMITTED:
            self.to_commit.update(message[1])  # several batches' commits go to Kafka as one

    def commit_to_kafka(self) -> None:
        if self.to_commit and self.intake is not None:
            offsets = {p: offset for p, offset in self.to_commit.items() if offset is not None}
            self.to_commit = {}
            self.intake.commit_async(offsets, self.kafka_commit_failed)

    def kafka_commit_failed(self, reason: str) -> None:
        log.warning(
            "Kafka did not take the committed offsets (informational only: "
            "the ledger's database holds them): %s",
            reason,
        )
        self.send((KAFKA_COMMIT_FAILED, reason))


def serve(
    control: Connection,
    batches: Connection,
    bootstrap: str,
    group_id: str,
    topic_prefix: str,
    consumer_config: dict[str, Any],
    max_records: int,
    window: int,
) -> None:
    """The intake process: read, decode and validate batches until told to stop."""
    helper_process.become_helper("ledger-intake")
    ledger = _Ledger(control, batches, window)
    try:
        intake = KafkaIntake(
            make_consumer(bootstrap, group_id, **consumer_config),
            Topics(topic_prefix),
            on_assigned=ledger.positions_for,
            on_revoked=ledger.revoked,
        )
    except Exception as exc:
        ledger.send((ERROR, f"{type(exc).__name__}: {exc}"))
        return
    ledger.intake = intake
    ledger.send((READY,))
    tune_collector()
    try:
        while True:
            ledger.handle_waiting()
            if ledger.stopped:
                break
            ledger.commit_to_kafka()
            records = intake.poll(IDLE_POLL_MS, max_records)
            epoch = ledger.epoch  # after the poll: a rebalance inside it may have moved the positions
            if records:
                ledger.send_batch(epoch, records)
    except Exception as exc:
        log.exception("reading the input failed")
        ledger.send((ERROR, f"{type(exc).__name__}: {exc}"))
        raise
    finally:
        intake.close()
