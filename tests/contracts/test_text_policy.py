"""One text policy for every free-text field of every input event."""

from __future__ import annotations

import dataclasses
import typing
from datetime import UTC, datetime
from typing import Any

import pytest

from services.contracts.events import EVENT_TYPES, Event, field_names
from services.contracts.validation import problems_with

# Fields whose values come from a closed set or a fixed pattern; every other
# string field is free text.
CLOSED = {
    "event_id",
    "currency",
    "channel",
    "anonymity",
    "kind",
    "document_sha256",
    "receipt_no",
    "action",
    "planned_on",
}
IDS = {
    "project_id",
    "donation_id",
    "disbursement_id",
    "refund_id",
    "record_id",
    "venue_id",
    "provider",
    "resolution_id",
    "target_project_id",
}
VALUES: dict[str, Any] = {
    "currency": "CNY",
    "channel": "web",
    "anonymity": "masked",
    "kind": "cash_box",
    "action": "redirect",
    "document_sha256": "a" * 64,
    "receipt_no": "SIP-2026-0001234",
    "planned_on": "2026-12-28",
    "event_id": "0f3c2a4e-9a1b-4c7d-8e2f-5a6b7c8d9e0f",
    "name": "乐龄助餐",
    "cost_cap_bp": 500,
}
HOSTILE = {
    "NUL": "王\x00五",
    "C0 escape": "王\x1b[31m五",
    "C1 control": "王\x85五",
    "right-to-left override": "\u202eedirrevo",
    "first-strong isolate": "\u2068王五\u2069",
    "not NFC": "Ame\u0301lie",  # e + combining acute: NFC spells it é
}


def _value(name: str, hint: Any) -> Any:
    if name in VALUES:
        return VALUES[name]
    if name in IDS:
        return "x1"
    types = set(typing.get_args(hint)) or {hint}
    if datetime in types:
        return datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    if int in types:
        return 100 if name.endswith("_fen") else 1
    if bool in types:
        return False
    if str in types:
        return "正文 text"
    if dict in types or any(typing.get_origin(t) is dict for t in types):
        return {}
    if list in types or any(typing.get_origin(t) is list for t in types):
        return []
    return None


def valid(cls: type[Event]) -> Event:
    hints = typing.get_type_hints(cls)
    return cls(**{name: _value(name, hints[name]) for name in field_names(cls)})


def free_text_fields(cls: type[Event]) -> list[str]:
    hints = typing.get_type_hints(cls)
    return [
        name
        for name in field_names(cls)
        if name not in CLOSED | IDS and str in (set(typing.get_args(hints[name])) or {hints[name]})
    ]


CASES = [(cls, name) for cls in EVENT_TYPES.values() for name in free_text_fields(cls)]


@pytest.mark.parametrize("cls", list(EVENT_TYPES.values()), ids=list(EVENT_TYPES))
def test_the_valid_example_of_each_event_is_valid(cls: type[Event]) -> None:
    assert problems_with(valid(cls)) == []


def test_the_policy_covers_the_fields_people_type() -> None:
    covered = {name for _, name in CASES}
    assert {"display_name", "message", "purpose", "name", "actor", "item"} <= covered


@pytest.mark.parametrize(("cls", "name"), CASES, ids=[f"{c.__name__}.{n}" for c, n in CASES])
@pytest.mark.parametrize("hostile", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_text_is_refused_naming_the_field(cls: type[Event], name: str, hostile: str) -> None:
    event = dataclasses.replace(valid(cls), **{name: HOSTILE[hostile]})
    problems = problems_with(event)
    assert problems and all(p.startswith(f"{name} ") for p in problems), problems


@pytest.mark.parametrize(("cls", "name"), CASES, ids=[f"{c.__name__}.{n}" for c, n in CASES])
def test_over_long_text_is_refused_naming_the_field(cls: type[Event], name: str) -> None:
    problems = problems_with(dataclasses.replace(valid(cls), **{name: "长" * 2001}))
    assert any(p.startswith(f"{name} is 2001 characters long") for p in problems), problems


def test_multi_line_fields_keep_their_line_breaks_and_others_do_not() -> None:
    gift = valid(EVENT_TYPES["DonationConfirmed"])
    assert problems_with(dataclasses.replace(gift, message="谢谢\n加油")) == []
    assert problems_with(dataclasses.replace(gift, display_name="王\n五")) == [
        "display_name holds the control or formatting character U+000A, which no text may hold"
    ]
