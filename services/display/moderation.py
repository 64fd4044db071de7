"""Donor messages on a public screen: cleaned, then shown, held for staff, or never shown.

A screen in a community centre is read by children and passers-by, and a message
is free text from anyone who scanned a QR code, so nothing reaches a screen
unreviewed unless a venue chose a word list. Escaping is not done here: the page
inserts every text with ``textContent``, so markup in a message stays text.
"""

from __future__ import annotations

import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

from services.display.decisions import APPROVED

# Held messages wait in memory; past this many the oldest are dropped unshown.
MAX_HELD = 500


class ModerationMode(StrEnum):
    OFF = "off"  # messages are never shown
    HOLD = "hold"  # every message waits for a member of staff
    WORDLIST = "wordlist"  # shown unless a blocked word matches; matches wait for staff


@dataclass(frozen=True)
class ModerationPolicy:
    mode: ModerationMode = ModerationMode.OFF
    blocked_words: tuple[str, ...] = ()
    max_chars: int = 40


@dataclass(frozen=True)
class HeldMessage:
    entry_id: str
    text: str
    reason: str
    held_at: float = field(default_factory=time.time)


# Cc: control characters; Cf: format characters such as zero-width joiners and the
# bidi overrides that could make a message render differently from how it reads.
_STRIPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def clean(text: str, max_chars: int) -> str:
    """NFKC-normalised, invisible characters removed, whitespace collapsed, length capped."""
    normalised = unicodedata.normalize("NFKC", text)
    visible = "".join(
        " " if ch.isspace() else ch
        for ch in normalised
        if ch.isspace() or unicodedata.category(ch) not in _STRIPPED_CATEGORIES
    )
    collapsed = " ".join(visible.split())
    return collapsed if len(collapsed) <= max_chars else collapsed[: max_chars - 1] + "…"


def _comparable(text: str) -> str:
    # Spaces and punctuation inserted between the characters of a word must not defeat
    # the list ("坏 词", "b.a.d"), so only letters and digits are compared.
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if ch.isalnum())


class Moderator:
    def __init__(self, policy: ModerationPolicy | None = None) -> None:
        self._held: OrderedDict[str, HeldMessage] = OrderedDict()
        # What staff decided (on any gateway), so a message is not held again after a
        # restart, nor on a gateway that reads it after the decision.
        self._decided: dict[str, str] = {}
        self.policy = policy or ModerationPolicy()

    @property
    def policy(self) -> ModerationPolicy:
        return self._policy

    @policy.setter
    def policy(self, policy: ModerationPolicy) -> None:
        self._policy = policy
        self._blocked = tuple(w for w in (_comparable(word) for word in policy.blocked_words) if w)

    def review(self, entry_id: str, message: str | None) -> str | None:
        """The text to show with the gift now, or None (nothing, or held for staff)."""
        if message is None or self._policy.mode is ModerationMode.OFF:
            return None
        text = clean(message, self._policy.max_chars)
        if not text:
            return None
        decided = self._decided.get(entry_id)
        if decided is not None:
            return text if decided == APPROVED else None
        if self._policy.mode is ModerationMode.HOLD:
            self._hold(entry_id, text, "needs approval")
            return None
        if self.blocked_word_in(text):
            self._hold(entry_id, text, "blocked word")
            return None
        return text

    def blocked_word_in(self, text: str) -> bool:
        comparable = _comparable(text)
        return any(word in comparable for word in self._blocked)

    def held(self) -> list[HeldMessage]:
        return list(self._held.values())

    def is_held(self, entry_id: str) -> bool:
        return entry_id in self._held

    def decide(self, entry_id: str, decision: str) -> HeldMessage | None:
        """Record staff's decision; the message it releases for screens, if it was held here."""
        self._decided[entry_id] = decision
        held = self._held.pop(entry_id, None)
        return held if decision == APPROVED else None

    def _hold(self, entry_id: str, text: str, reason: str) -> None:
        self._held[entry_id] = HeldMessage(entry_id, text, reason)
        while len(self._held) > MAX_HELD:
            self._held.popitem(last=False)
