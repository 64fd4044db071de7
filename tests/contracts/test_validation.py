import dataclasses

import pytest

from services.contracts.validation import InvalidEvent, problems_with, validate
from tests.fixtures import factories as f


def test_a_valid_donation_has_no_problems() -> None:
    assert problems_with(f.confirmed("p1")) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"gross_fen": -5}, "gross_fen must be positive"),
        ({"gross_fen": 0}, "gross_fen must be positive"),
        ({"fee_fen": -1}, "fee_fen must be non-negative"),
        ({"gross_fen": 100, "fee_fen": 200}, "fee_fen 200 exceeds gross_fen 100"),
        ({"currency": "XYZ"}, "unknown currency 'XYZ'"),
        ({"channel": "pigeon"}, "unknown channel"),
        ({"anonymity": "named", "display_name": None}, "needs the display_name"),
        ({"event_id": "not-a-uuid"}, "is not a UUID"),
        ({"project_id": "bad id with spaces"}, "project_id 'bad id with spaces' is not a valid id"),
        ({"project_id": "p1\n"}, "project_id 'p1\\n' is not a valid id"),  # "$" would let it through
        ({"event_id": "0f3c2a4e-9a1b-4c7d-8e2f-5a6b7c8d9e0f\n"}, "is not a UUID"),
        ({"provider_charge_id": "x" * 500}, "provider_charge_id is 500 characters long"),
        ({"gross_fen": 10**12}, "exceeds the per-event limit"),
        ({"gross_fen": 12.5}, "gross_fen is a float"),
    ],
)
def test_each_problem_is_named(change: dict[str, object], expected: str) -> None:
    event = dataclasses.replace(f.confirmed("p1"), **change)
    problems = problems_with(event)
    assert any(expected in p for p in problems), problems
    with pytest.raises(InvalidEvent):
        validate(event)


@pytest.mark.parametrize(
    "event_id",
    [
        "0F3C2A4E-9A1B-4C7D-8E2F-5A6B7C8D9E0F",
        "{0f3c2a4e-9a1b-4c7d-8e2f-5a6b7c8d9e0f}",
        "0f3c2a4e9a1b4c7d8e2f5a6b7c8d9e0f",
        "urn:uuid:0f3c2a4e-9a1b-4c7d-8e2f-5a6b7c8d9e0f",
    ],
)
def test_event_ids_only_in_the_canonical_form_the_journal_stores(event_id: str) -> None:
    problems = problems_with(dataclasses.replace(f.confirmed("p1"), event_id=event_id))
    assert problems == [f"event_id {event_id!r} is not a UUID in canonical form (lower-case 8-4-4-4-12 hex)"]


def test_a_provider_is_bounded_like_an_id_since_it_names_accounts() -> None:
    problems = problems_with(dataclasses.replace(f.confirmed("p1"), provider="p" * 119))
    assert any("provider" in p and "is not a valid id" in p for p in problems), problems
    assert problems_with(dataclasses.replace(f.confirmed("p1"), provider="wechat_pay")) == []


def test_offline_kinds_and_registration_rules() -> None:
    assert any("unknown offline kind" in p for p in problems_with(f.offline("p1", kind="lottery")))
    assert any("cost_cap_bp" in p for p in problems_with(f.registered("p1", cost_cap_bp=20_000)))
    assert any("name is empty" in p for p in problems_with(f.registered("p1", name="  ")))


@pytest.mark.parametrize(
    "receipt_no", [None, "SIP-2026-0001234", "AB-1999-0000000", "ORG1A2B3-2026-123456789"]
)
def test_a_confirmed_gift_may_carry_a_receipt_number(receipt_no: str | None) -> None:
    assert problems_with(f.confirmed("p1", receipt_no=receipt_no)) == []


@pytest.mark.parametrize(
    "receipt_no",
    [
        "",
        "sip-2026-0001234",  # the organisation code is upper case
        "S-2026-0001234",  # the code has 2-12 characters
        "ABCDEFGHIJKLM-2026-0001234",
        "SIP-26-0001234",  # a four-digit year
        "SIP-2026-123456",  # at least 7 digits: numbers keep their width as they grow
        "SIP-2026-0001234\n",  # "$" would let this through
        "SIP-2026-０００１２３４",  # full-width digits are \\d to Python, not to a reader's eye
        "SIP_2026_0001234",
        " SIP-2026-0001234",
    ],
)
def test_a_receipt_number_not_in_the_receipt_format_is_refused(receipt_no: str) -> None:
    problems = problems_with(f.confirmed("p1", receipt_no=receipt_no))
    assert any(p.startswith(f"receipt_no {receipt_no!r} is not a receipt number") for p in problems), problems
