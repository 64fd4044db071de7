"""Telling a redelivery from a conflicting duplicate: the same event id with another body."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

import services.contracts.events as ev
from services.ledger.domain.book import LATER_OPTIONAL_FIELDS, body_of
from services.ledger.domain.chain import iso_ms


def differences(event: ev.Event, recorded: Mapping[str, Any]) -> list[str]:
    """The fields in which `event` differs from the journal entry recorded under its id.

    [] for a true redelivery. `recorded` is the entry's canonical record. Personal
    fields (a donor's name, a message) never reach the journal, so they cannot be
    compared; everything the entry asserts is.
    """
    asserted = {
        "kind": event.type_name,
        "project_id": event.project_id,
        "effective_at": iso_ms(event.occurred_at),
    }
    found = [name for name, value in asserted.items() if recorded.get(name) != value]
    body = recorded.get("body") or {}
    claimed = body_of(event)
    found += [name for name, value in claimed.items() if orjson.dumps(value) != orjson.dumps(body.get(name))]
    # A field left out of the body while null is still asserted where the entry has it.
    found += [name for name in LATER_OPTIONAL_FIELDS if name in body and name not in claimed]
    return found


def changes(first: ev.Event, again: ev.Event) -> list[str]:
    """The fields in which two events of one id differ ([] for the same event twice)."""
    if type(first) is not type(again):
        return ["type"]
    return [name for name in ev.field_names(type(first)) if getattr(first, name) != getattr(again, name)]
