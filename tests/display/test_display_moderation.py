"""Donor messages: cleaned, then shown, held for staff, or never shown."""

from __future__ import annotations

from services.display.decisions import APPROVED, REJECTED
from services.display.moderation import MAX_HELD, ModerationMode, ModerationPolicy, Moderator, clean


def test_messages_are_off_by_default() -> None:
    assert Moderator().review("a", "你好") is None


def test_in_hold_mode_every_message_waits_for_staff() -> None:
    moderator = Moderator(ModerationPolicy(mode=ModerationMode.HOLD))
    assert moderator.review("a", "愿长者安康") is None
    assert [m.entry_id for m in moderator.held()] == ["a"]
    approved = moderator.decide("a", APPROVED)
    assert approved is not None and approved.text == "愿长者安康"
    assert moderator.held() == []


def test_a_rejected_message_is_gone_and_never_shown() -> None:
    moderator = Moderator(ModerationPolicy(mode=ModerationMode.HOLD))
    moderator.review("a", "x")
    assert moderator.is_held("a")
    assert moderator.decide("a", REJECTED) is None
    assert not moderator.is_held("a")
    assert moderator.review("a", "x") is None and moderator.held() == []  # read again: not held again


def test_a_decision_taken_before_the_message_arrives_applies_to_it() -> None:
    # Another gateway's staff decided, or this gateway restarted and is reading the feed again.
    moderator = Moderator(ModerationPolicy(mode=ModerationMode.HOLD))
    assert moderator.decide("a", APPROVED) is None  # nothing held here yet
    moderator.decide("b", REJECTED)
    assert moderator.review("a", "愿长者安康") == "愿长者安康"
    assert moderator.review("b", "x") is None
    assert moderator.review("c", "y") is None
    assert [m.entry_id for m in moderator.held()] == ["c"]


def test_the_word_list_catches_words_split_by_spaces_punctuation_or_full_width_letters() -> None:
    moderator = Moderator(ModerationPolicy(mode=ModerationMode.WORDLIST, blocked_words=("坏词", "spam")))
    assert moderator.review("a", "一切顺利") == "一切顺利"
    for sneaky in ("坏 词", "坏.词", "ＳＰＡＭ here", "S p-a m"):
        assert moderator.review(sneaky, sneaky) is None, sneaky
    assert {m.reason for m in moderator.held()} == {"blocked word"}


def test_cleaning_removes_invisible_and_direction_characters_and_caps_the_length() -> None:
    assert clean("a\u202eb\u200bc\x07", 40) == "abc"
    assert clean("  多个   空格\n换行 ", 40) == "多个 空格 换行"
    assert clean("一二三四五六七八九十", 6) == "一二三四五…"


def test_markup_is_kept_as_text_for_the_page_to_escape() -> None:
    moderator = Moderator(ModerationPolicy(mode=ModerationMode.WORDLIST))
    assert moderator.review("a", "<script>alert(1)</script>") == "<script>alert(1)</script>"


def test_an_empty_message_is_no_message() -> None:
    moderator = Moderator(ModerationPolicy(mode=ModerationMode.HOLD))
    assert moderator.review("a", " \u200b ") is None
    assert moderator.held() == []


def test_the_hold_queue_is_bounded() -> None:
    moderator = Moderator(ModerationPolicy(mode=ModerationMode.HOLD))
    for i in range(MAX_HELD + 10):
        moderator.review(str(i), "m")
    held = moderator.held()
    assert len(held) == MAX_HELD
    assert held[0].entry_id == "10"  # the oldest went first
