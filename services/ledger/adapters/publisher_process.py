"""The ledger's outputs published from a process of their own.

Building, Avro-encoding and producing a batch's outcomes, feed items and
totals took a fifth of the ledger's one busy core (docs/benchmarks.md). A
thread does not help (the GIL); another process does: the batch loop sends it
a committed batch's `PublishPlan` (plain values, cheap to pickle) over a pipe
and goes on with the next batch while the plan is published. Only large
batches' plans come here (`service.outputs.SizeRoutedPublisher`): for a few records
the hand-over costs more than it saves.

At most `window` plans are under way: the batch loop waits for the oldest to
be acknowledged (sent and acked by the broker) before it hands over another,
so a slow broker slows the ledger down instead of piling plans up in memory.

Failure handling is the same as for the small plans the ledger publishes
itself (`outputs.OutputPublisher`):
- a plan the broker did not acknowledge raises `OutputsNotAcknowledged` in the
  ledger (counted in `ledger_publish_failures_total`): the batch loop publishes
  again from the stored outputs watermark, so nothing derived goes missing;
- a producer that failed for good, or a publisher process that died, raises
  `OutputBroken` in the ledger, which stops to be restarted (and publishes
  from the watermark when it starts).
The publisher exits when the ledger closes the pipe, also when the ledger was
killed: it first finishes the plans it has.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing
from multiprocessing.connection import Connection

from services.contracts.topics import Topics
from services.ledger.adapters import helper_process
from services.ledger.service.outputs import OutputPublisher, PublishPlan, TracksAcknowledged
from services.platform.broken import OutputBroken
from services.platform.rdkafka_output import RdKafkaOutput

log = logging.getLogger(__name__)

WINDOW = 2
# Longer than the publisher's own flush timeout (30 s), after which it answers anyway.
ANSWER_TIMEOUT_S = 60.0
# Each plan is flushed as soon as it is produced, and librdkafka's flush sends
# at once whatever lingers; so a long linger costs no latency here, and a
# plan's records go to the broker in one request per partition instead of one
# every 2 ms while the plan is being produced. The broker's share of the two
# cores fell with it: 100,000 gifts on SQLite ran at 8,416-10,074 events/s
# (mean 9,149) against 7,157-9,312 (mean 8,375) with 2 ms, four alternated pairs.
PLAN_LINGER_MS = 50
BROKEN = "broken"
FAILED = "failed"


class PublisherProcess(TracksAcknowledged):
    """The ledger's handle on its publisher process; a `Publisher`."""

    def __init__(self, bootstrap: str, topics: Topics, window: int = WINDOW) -> None:
        self._conn, child_end = multiprocessing.Pipe()
        self._process = helper_process.start("ledger-publisher", serve, (child_end, bootstrap, topics.prefix))
        child_end.close()  # so that the child's exit reads as end-of-file here
        self.window = window
        self._in_flight: collections.deque[int] = collections.deque()  # each plan's last_seq

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def publish(self, plan: PublishPlan) -> None:
        while len(self._in_flight) >= self.window:
            self._await_answer()
        try:
            self._conn.send(plan)
        except OSError as exc:
            raise self._broken(f"cannot hand it a plan: {exc}") from exc
        self._in_flight.append(plan.last_seq)

    def drain(self) -> None:
        while self._in_flight:
            self._await_answer()

    def close(self, timeout: float = 30.0) -> None:
        """Let the publisher finish what it has, then stop it."""
        helper_process.stop(self._process, self._conn, timeout)
        self._conn.close()

    def _await_answer(self) -> None:
        if not self._conn.poll(ANSWER_TIMEOUT_S):
            raise self._broken(f"no answer within {ANSWER_TIMEOUT_S:.0f}s")
        try:
            answer = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise self._broken("it exited") from exc
        last_seq = self._in_flight.popleft()
        if answer is None:
            self._plan_acknowledged(last_seq)
            return
        kind, reason = answer
        if kind == BROKEN:
            raise OutputBroken(reason)
        raise self._plan_failed(reason)

    def _broken(self, what: str) -> OutputBroken:
        self._process.join(0.1)
        return OutputBroken(f"the publisher process (exit code {self._process.exitcode}): {what}")


def serve(conn: Connection, bootstrap: str, topic_prefix: str) -> None:
    """The publisher process: publish each plan received, answer each one."""
    helper_process.become_helper("ledger-publisher")
    output = RdKafkaOutput(bootstrap, client_id="charity-ledger-publisher", linger_ms=PLAN_LINGER_MS)
    publisher = OutputPublisher(output, Topics(topic_prefix))
    try:
        while True:
            try:
                plan = conn.recv()
            except EOFError:  # the ledger is gone without saying so (killed)
                break
            if plan is None:
                break
            answer: tuple[str, str] | None = None
            try:
                publisher.publish(plan)
            except OutputBroken as exc:
                answer = (BROKEN, str(exc))
            except Exception as exc:
                answer = (FAILED, f"{type(exc).__name__}: {exc}")
            try:
                conn.send(answer)
            except OSError:  # the ledger is gone
                break
            if answer is not None and answer[0] == BROKEN:
                break
    finally:
        output.close()
