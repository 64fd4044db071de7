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


def test_offline_kinds_and_registration_rules() -> None:
    assert any("unknown offline kind" in p for p in problems_with(f.offline("p1", kind="lottery")))
    assert any("cost_cap_bp" in p for p in problems_with(f.registered("p1", cost_cap_bp=20_000)))
    assert any("name is empty" in p for p in problems_with(f.registered("p1", name="  ")))
