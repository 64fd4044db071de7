"""Donor messages and names on a public screen: cleaned, then shown, held for staff, or never shown.

A screen in a community centre is read by children and passers-by, and a message
is free text from anyone who scanned a QR code, so nothing reaches a screen
unreviewed unless a venue chose a word list. Escaping is not done here: the page
inserts every text with ``textContent``, so markup in a message stays text.

A donor's name (as the ledger masked it per the donor's consent) is free text too.
One that the word list matches, that looks like markup or a template
(``<script>``, ``{{7*7}}``), or that an operator flags is shown as the anonymous
label until staff approve it; a rejected one stays that way.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

from services.display.decisions import APPROVED, FLAGGED, REJECTED

# What a held or rejected name is shown as: how Chinese charities show an anonymous donor.
MASKED_NAME = "爱心人士"
# Characters of markup, templates and scripts, which no one's name needs.
_MARKUP = re.compile(r"[<>{}\[\]`$\\|]|&#?\w+;|javascript:", re.IGNORECASE)

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
    """A message (or, with subject "name", a donor's name) waiting for a member of staff."""

    entry_id: str
    text: str
    reason: str
    held_at: float = field(default_factory=time.time)
    # The gift's project and the venue it was given at: which venues' screens would show it.
    project_id: str = ""
    venue_id: str | None = None
    subject: str = "message"


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
        self._held_names: OrderedDict[str, HeldMessage] = OrderedDict()
        # What staff decided (on any gateway), so a message is not held again after a
        # restart, nor on a gateway that reads it after the decision.
        self._decided: dict[str, str] = {}
        self._decided_names: dict[str, str] = {}
        self.policy = policy or ModerationPolicy()

    @property
    def policy(self) -> ModerationPolicy:
        return self._policy

    @policy.setter
    def policy(self, policy: ModerationPolicy) -> None:
        self._policy = policy
        self._blocked = tuple(w for w in (_comparable(word) for word in policy.blocked_words) if w)

    def review(
        self, entry_id: str, message: str | None, project_id: str = "", venue_id: str | None = None
    ) -> str | None:
        """The text to show with the gift now, or None (nothing, or held for staff)."""
        if message is None or self._policy.mode is ModerationMode.OFF:
            return None
        text = clean(message, self._policy.max_chars)
        if not text:
            return None
        decided = self._decided.get(entry_id)
        if decided is not None:
            return text if decided == APPROVED else None
        reason = (
            "needs approval"
            if self._policy.mode is ModerationMode.HOLD
            else "blocked word"
            if self.blocked_word_in(text)
            else None
        )
        if reason is None:
            return text
        self._hold(HeldMessage(entry_id, text, reason, project_id=project_id, venue_id=venue_id))
        return None

    def review_name(self, entry_id: str, name: str, project_id: str = "", venue_id: str | None = None) -> str:
        """The donor's name to show with the gift now: the name, or the masked label while it
        is held (the word list matched, it looks like markup, an operator flagged it) or rejected."""
        if not name or name == MASKED_NAME:
            return name
        decided = self._decided_names.get(entry_id)
        if decided == APPROVED:
            return name
        if decided == REJECTED:
            return MASKED_NAME
        reason = (
            "flagged by staff"
            if decided == FLAGGED
            else "looks like markup"
            if _MARKUP.search(name)
            else "blocked word"
            if self.blocked_word_in(name)
            else None
        )
        if reason is None:
            return name
        self._hold_name(
            HeldMessage(entry_id, name, reason, project_id=project_id, venue_id=venue_id, subject="name")
        )
        return MASKED_NAME

    def blocked_word_in(self, text: str) -> bool:
        comparable = _comparable(text)
        return any(word in comparable for word in self._blocked)

    def held(self) -> list[HeldMessage]:
        """Held messages, then held names, oldest first."""
        return [*self._held.values(), *self._held_names.values()]

    def is_held(self, entry_id: str) -> bool:
        return entry_id in self._held

    def held_name(self, entry_id: str) -> HeldMessage | None:
        return self._held_names.get(entry_id)

    def decide_name(self, entry_id: str, decision: str) -> HeldMessage | None:
        """Record staff's decision on a name; the held name it releases for screens, if any."""
        self._decided_names[entry_id] = decision
        if decision == FLAGGED:
            return None
        held = self._held_names.pop(entry_id, None)
        return held if decision == APPROVED else None

    def flag_name(self, entry_id: str, name: str, project_id: str, venue_id: str | None) -> None:
        """Hold a name already on screens (decide_name(FLAGGED) records that an operator did)."""
        self._hold_name(
            HeldMessage(
                entry_id, name, "flagged by staff", project_id=project_id, venue_id=venue_id, subject="name"
            )
        )

    def decide(self, entry_id: str, decision: str) -> HeldMessage | None:
        """Record staff's decision; the message it releases for screens, if it was held here."""
        self._decided[entry_id] = decision
        held = self._held.pop(entry_id, None)
        return held if decision == APPROVED else None

    def _hold(self, held: HeldMessage) -> None:
        _bounded_put(self._held, held)

    def _hold_name(self, held: HeldMessage) -> None:
        _bounded_put(self._held_names, held)


def _bounded_put(queue: OrderedDict[str, HeldMessage], held: HeldMessage) -> None:
    queue[held.entry_id] = held
    while len(queue) > MAX_HELD:
        queue.popitem(last=False)
