"""Input records as the batch loop sees them: decoded, validated, or dead letters.

Decoding and validation need neither the database nor the ledger's state and do
no I/O, so the Kafka intake (`adapters.kafka_intake`) runs them in a process of
its own and sends the batch loop batches of `ReadRecord`s.
"""

from __future__ import annotations

from typing import NamedTuple

from services.contracts import events as ev
from services.contracts.codec import DecodeError, EventCodec
from services.contracts.topics import Topics
from services.contracts.validation import problems_with

# How long one poll may wait when nothing arrives. Records end a poll at once, so
# this costs no latency. A join that outlasts its poll is picked up again by the
# next one (see kafka_intake._keep_rejoin_requested); long polls make that rarer,
# and they keep a ledger whose broker is gone from spinning.
IDLE_POLL_MS = 1000

Partition = tuple[str, int]  # (topic, partition)
# Where reading resumes: the next offset of each partition, None for its beginning.
Positions = dict[Partition, int | None]


class DeadLetter(NamedTuple):
    kind: str  # undecodable | wrong_topic | invalid
    reason: str
    value: bytes  # the record as it came, for the DLQ


# One input record after decoding: (topic, partition, offset, key, event, dead
# letter), where exactly one of the last two is None. A plain tuple, not a
# NamedTuple: batches cross a process boundary, and a batch of NamedTuples took
# five times as long to unpickle (13.9 against 2.8 µs a gift, with the events'
# own fast pickling, events.Event.__reduce__).
ReadRecord = tuple[str, int, int, bytes | None, ev.Event | None, DeadLetter | None]


def source_of(topic: str, partition: int, offset: int) -> str:
    return f"{topic}/{partition}/{offset}"


class Reader:
    """Turns raw records into `ReadRecord`s: pure, no I/O."""

    def __init__(self, topics: Topics, codec: EventCodec | None = None) -> None:
        self.topics = topics
        self.codec = codec or EventCodec()

    def read(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> ReadRecord:
        try:
            event = self.codec.decode(value)
        except DecodeError as exc:
            return self._dead(topic, partition, offset, key, value, "undecodable", str(exc))
        if event.type_name not in ev.EVENT_TYPES or event.topic_base != self._base(topic):
            reason = f"{event.type_name} does not belong on {topic}"
            return self._dead(topic, partition, offset, key, value, "wrong_topic", reason)
        problems = problems_with(event)
        if problems:
            return self._dead(topic, partition, offset, key, value, "invalid", "; ".join(problems))
        return (topic, partition, offset, key, event, None)

    def _base(self, topic: str) -> str:
        prefix = self.topics.prefix
        return topic[len(prefix) :] if topic.startswith(prefix) else topic

    @staticmethod
    def _dead(
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        kind: str,
        reason: str,
    ) -> ReadRecord:
        return (topic, partition, offset, key, None, DeadLetter(kind, reason, value or b""))
