"""Reads one of the ledger's own output topics from its first record to the end it had
when reading began, decoded: the journal and checkpoints topics for a restore."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from services.contracts.codec import EventCodec
from services.contracts.events import Event


class TopicMissing(LookupError):
    """The topic does not exist on the brokers (or has no partitions)."""


class RecordUndecodable(ValueError):
    """A record that is not one of the project's events (or is corrupt), named by where it is."""


@dataclass(frozen=True)
class TopicRecord:
    """An event and where it was read, to name the record a restore refuses."""

    topic: str
    partition: int
    offset: int
    event: Event

    @property
    def where(self) -> str:
        return f"{self.topic} partition {self.partition} offset {self.offset}"


def records_to_end(bootstrap: str, topic: str, idle_timeout: float = 30.0) -> Iterator[TopicRecord]:
    """Every record of `topic`, partition by partition in offset order, up to the end
    offsets taken at the start (records written meanwhile are left for later).

    No consumer group: nothing is committed anywhere. TimeoutError when the brokers
    hand over nothing for `idle_timeout` seconds while records remain; RecordUndecodable
    at the first record the codec cannot read."""
    codec = EventCodec()
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        client_id="charity-ledger-restore",
    )
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            raise TopicMissing(f"no topic {topic} at {bootstrap}")
        for partition in partitions:
            yield from _partition(consumer, codec, TopicPartition(topic, partition), idle_timeout)
    finally:
        consumer.close()


def read_to_end(bootstrap: str, topic: str, idle_timeout: float = 30.0) -> Iterator[Event]:
    """The events of `records_to_end`, without where they were read."""
    return (record.event for record in records_to_end(bootstrap, topic, idle_timeout))


def _partition(
    consumer: KafkaConsumer, codec: EventCodec, tp: TopicPartition, idle_timeout: float
) -> Iterator[TopicRecord]:
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    end = consumer.end_offsets([tp])[tp]
    last_progress = time.monotonic()
    while consumer.position(tp) < end:
        records = consumer.poll(timeout_ms=1000).get(tp, [])
        if records:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > idle_timeout:
            raise TimeoutError(
                f"{tp.topic}/{tp.partition}: nothing read for {idle_timeout:.0f}s at offset "
                f"{consumer.position(tp)} of {end}"
            )
        for record in records:
            if record.offset < end:
                yield TopicRecord(
                    tp.topic, tp.partition, record.offset, _decoded(codec, tp, record.offset, record.value)
                )


def _decoded(codec: EventCodec, tp: TopicPartition, offset: int, value: bytes | None) -> Event:
    try:
        return codec.decode(value)
    except (ValueError, TypeError) as why:  # the codec's DecodeError, or fields an event refuses
        raise RecordUndecodable(
            f"{tp.topic} partition {tp.partition} offset {offset}: not an event this ledger can read ({why})"
        ) from why
