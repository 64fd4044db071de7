"""Sealed personal text: opened only with the donor's key, for that donor and field."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.contracts.sealed import CannotUnseal, is_sealed, seal, unseal

KEY = os.urandom(32)


@given(st.text(max_size=200))
def test_round_trip(text: str) -> None:
    sealed = seal(KEY, "donor-1", "message", text)
    assert is_sealed(sealed)
    assert unseal(KEY, "donor-1", "message", sealed) == text


def test_deterministic_so_a_republished_event_is_identical() -> None:
    assert seal(KEY, "d", "message", "加油") == seal(KEY, "d", "message", "加油")
    assert seal(KEY, "d", "message", "加油") != seal(KEY, "d", "message", "加油！")


@pytest.mark.parametrize(
    ("key", "donor", "field"),
    [(os.urandom(32), "donor-1", "message"), (KEY, "donor-2", "message"), (KEY, "donor-1", "display_name")],
)
def test_another_key_donor_or_field_cannot_open_it(key: bytes, donor: str, field: str) -> None:
    sealed = seal(KEY, "donor-1", "message", "愿长者吃得暖")
    with pytest.raises(CannotUnseal):
        unseal(key, donor, field, sealed)


def test_tampered_or_plain_values_are_refused() -> None:
    sealed = seal(KEY, "d", "message", "hello")
    flipped = sealed[:-3] + ("A" if sealed[-3] != "A" else "B") + sealed[-2:]
    for bad in (flipped, "hello", "sealed:v1:!!!"):
        with pytest.raises(CannotUnseal):
            unseal(KEY, "d", "message", bad)
    assert not is_sealed("hello") and not is_sealed(None)
