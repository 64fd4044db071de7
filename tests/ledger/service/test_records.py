"""Reading a record: an event, or the reason it is a dead letter (no broker needed)."""

from __future__ import annotations

import dataclasses

from services.contracts.codec import EventCodec
from services.contracts.topics import Topics
from services.ledger.service.records import DeadLetter, Reader
from tests.fixtures import factories as f

codec = EventCodec()
reader = Reader(Topics("t1."))


def test_a_valid_gift_reads_as_its_event() -> None:
    gift = f.confirmed("p1")
    assert reader.read("t1.charity.donations", 2, 7, b"p1", codec.encode(gift)) == (
        "t1.charity.donations",
        2,
        7,
        b"p1",
        gift,
        None,
    )


def test_bytes_that_are_not_an_event_are_undecodable() -> None:
    *_, event, dead = reader.read("t1.charity.donations", 0, 1, b"k", b"garbage that is not avro")
    assert event is None and isinstance(dead, DeadLetter)
    assert (
        dead.kind == "undecodable"
        and "bad magic" in dead.reason
        and dead.value == b"garbage that is not avro"
    )
    *_, dead = reader.read("t1.charity.donations", 0, 2, None, None)
    assert dead is not None and dead.kind == "undecodable" and dead.value == b""


def test_an_event_on_another_topic_than_its_own_is_refused() -> None:
    value = codec.encode(f.confirmed("p1"))
    *_, dead = reader.read("t1.charity.projects", 0, 1, b"p1", value)
    assert dead == DeadLetter(
        "wrong_topic", "DonationConfirmed does not belong on t1.charity.projects", value
    )


def test_an_event_that_breaks_the_rules_is_invalid_and_says_which() -> None:
    value = codec.encode(dataclasses.replace(f.confirmed("p1"), gross_fen=-500))
    *_, event, dead = reader.read("t1.charity.donations", 0, 1, b"p1", value)
    assert event is None and dead is not None
    assert dead.kind == "invalid" and "gross_fen must be positive, got -500" in dead.reason
