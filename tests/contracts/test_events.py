"""Helpers of the event dataclasses: derived ids and field names."""

from __future__ import annotations

import pickle
import uuid
from dataclasses import FrozenInstanceError, fields

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.contracts.events import ALL_EVENT_TYPES, Event, derived_id, field_names


@given(purpose=st.sampled_from(["outcome", "feed", "totals-7", "tree-head"]), source=st.text(max_size=80))
def test_a_derived_id_is_the_uuid5_of_its_name(purpose: str, source: str) -> None:
    # Published ids must not change when the derivation is computed differently:
    # consumers de-duplicate republished outputs by them.
    assert derived_id(purpose, source) == str(
        uuid.uuid5(uuid.NAMESPACE_URL, f"charity-ledger:{purpose}:{source}")
    )


def test_derived_ids_differ_by_purpose_and_by_source() -> None:
    ids = {derived_id(p, s) for p in ("outcome", "feed") for s in ("a", "b")}
    assert len(ids) == 4


def test_field_names_are_every_field_in_declaration_order() -> None:
    for event_type in ALL_EVENT_TYPES.values():
        assert field_names(event_type) == tuple(f.name for f in fields(event_type))


@pytest.mark.parametrize("cls", list(ALL_EVENT_TYPES.values()), ids=list(ALL_EVENT_TYPES))
@given(data=st.data())
def test_every_event_pickles_to_an_equal_frozen_event(cls: type[Event], data: st.DataObject) -> None:
    # The intake process pickles input events to the batch loop (Event.__reduce__).
    event = data.draw(st.from_type(cls))
    copy = pickle.loads(pickle.dumps(event, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(copy) is cls and copy == event
    assert [getattr(copy, name) for name in field_names(cls)] == [
        getattr(event, name) for name in field_names(cls)
    ]
    with pytest.raises(FrozenInstanceError):
        copy.event_id = "changed"  # type: ignore[misc]
