"""Redeliveries against conflicting duplicates, from the entry the journal recorded."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import orjson

from services.ledger.domain.book import decide
from services.ledger.domain.chain import canonical_bytes, entry_record
from services.ledger.domain.duplicates import changes, differences
from services.ledger.domain.projector import apply_entry
from services.ledger.domain.view import LedgerView
from tests.fixtures import factories as f


def recorded(event: object) -> dict[str, object]:
    view = LedgerView()
    for step in f.opened_project("p1"):
        apply_entry(decide(step, view), view)
    entry = decide(event, view)  # type: ignore[arg-type]
    # As the store keeps it: the canonical bytes, read back as JSON.
    loaded: dict[str, object] = orjson.loads(
        canonical_bytes(entry_record(7, entry, "2026-01-01T00:00:00.000Z"))
    )
    return loaded


def test_a_redelivery_differs_in_nothing_and_a_changed_amount_or_time_is_named() -> None:
    gift = f.confirmed("p1", 5000, 30)
    assert differences(gift, recorded(gift)) == []
    assert differences(dataclasses.replace(gift, gross_fen=9000), recorded(gift)) == ["gross_fen"]
    later = dataclasses.replace(gift, occurred_at=gift.occurred_at + timedelta(seconds=1))
    assert differences(later, recorded(gift)) == ["effective_at"]
    assert differences(dataclasses.replace(gift, project_id="p2"), recorded(gift)) == ["project_id"]


def test_a_receipt_number_is_part_of_what_an_entry_asserts() -> None:
    gift = f.confirmed("p1", receipt_no="SIP-2026-0001234")
    assert differences(gift, recorded(gift)) == []
    renumbered = dataclasses.replace(gift, receipt_no="SIP-2026-0001235")
    assert differences(renumbered, recorded(gift)) == ["receipt_no"]
    # The same gift with a number and without one are two different claims.
    unnumbered = dataclasses.replace(gift, receipt_no=None)
    assert differences(unnumbered, recorded(unnumbered)) == []
    assert differences(gift, recorded(unnumbered)) == ["receipt_no"]
    assert differences(unnumbered, recorded(gift)) == ["receipt_no"]


def test_personal_fields_are_not_in_the_journal_so_only_a_batch_can_compare_them() -> None:
    gift = f.confirmed("p1", display_name="王五", anonymity="masked")
    renamed = dataclasses.replace(gift, display_name="李四")
    assert differences(renamed, recorded(gift)) == []
    assert changes(gift, renamed) == ["display_name"]
    assert changes(gift, gift) == []
    assert changes(gift, f.refunded("p1", gift.donation_id, 100)) == ["type"]
