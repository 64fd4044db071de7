"""The display state: totals only from TotalsUpdated, never backwards; gifts once each."""

from __future__ import annotations

from services.display.decisions import APPROVED
from services.display.moderation import ModerationMode, ModerationPolicy, Moderator
from services.display.state import DisplayState
from tests.fixtures.fake_ledger import feed_event, totals_event


def state(mode: ModerationMode = ModerationMode.OFF) -> DisplayState:
    return DisplayState(Moderator(ModerationPolicy(mode=mode)))


def test_a_newer_total_replaces_an_older_one() -> None:
    s = state()
    assert s.apply_totals(totals_event("elderly-meals", raised_fen=100, as_of_seq=1)) is not None
    view = s.apply_totals(totals_event("elderly-meals", raised_fen=250, as_of_seq=7))
    assert view is not None and view.raised_fen == 250
    assert s.projects["elderly-meals"].as_of_seq == 7


def test_an_older_total_arriving_late_is_ignored() -> None:
    s = state()
    s.apply_totals(totals_event("elderly-meals", raised_fen=250, as_of_seq=7))
    assert s.apply_totals(totals_event("elderly-meals", raised_fen=100, as_of_seq=3)) is None
    assert s.projects["elderly-meals"].raised_fen == 250


def test_a_republished_total_changes_nothing() -> None:
    s = state()
    s.apply_totals(totals_event("elderly-meals", raised_fen=250, as_of_seq=7, donations_count=2))
    again = totals_event("elderly-meals", raised_fen=250, as_of_seq=7, donations_count=2)
    assert s.apply_totals(again) is None


def test_a_refund_lowers_the_total_because_its_sequence_is_newer() -> None:
    s = state()
    s.apply_totals(totals_event("elderly-meals", raised_fen=250, as_of_seq=7))
    view = s.apply_totals(totals_event("elderly-meals", raised_fen=200, as_of_seq=8))
    assert view is not None and view.raised_fen == 200


def test_a_redelivered_gift_is_kept_once() -> None:
    s = state()
    gift = feed_event("elderly-meals", amount_fen=50_00, seq=3, shown_name="王**")
    first = s.apply_feed(gift)
    assert first is not None and first.shown_name == "王**" and first.amount_fen == 50_00
    assert s.apply_feed(gift) is None
    assert len(s.feed) == 1


def test_messages_are_hidden_unless_moderation_lets_them_through() -> None:
    hidden = state(ModerationMode.OFF).apply_feed(feed_event("x", amount_fen=1, seq=1, message="加油"))
    shown = state(ModerationMode.WORDLIST).apply_feed(feed_event("x", amount_fen=1, seq=1, message="加油"))
    assert hidden is not None and hidden.message is None
    assert shown is not None and shown.message == "加油"


def test_an_approved_message_is_attached_to_its_gift() -> None:
    s = state(ModerationMode.HOLD)
    gift = feed_event("elderly-meals", amount_fen=10_00, seq=1, message="祝福")
    entry = s.apply_feed(gift)
    assert entry is not None and entry.message is None
    held = s.moderator.decide(gift.event_id, APPROVED)
    assert held is not None
    updated = s.attach_message(gift.event_id, held.text)
    assert updated is not None and updated.message == "祝福"
    assert s.feed[-1].message == "祝福"
