"""One venue's stream: coalesced updates, numbered, kept for resumes, and fanned out to its screens.

Every screen of a venue sees the same sequence of messages, so a message id
``<epoch>-<seq>`` means the same thing to all of them. A screen that reconnects with
the id it saw last gets the messages after it merged into one, if they are still
in the history; otherwise (too far behind, another gateway, a restart: a
different epoch) it gets a fresh snapshot. Both leave the screen exactly where
a screen that never disconnected would be.

The snapshot is built from the *published* state (what message ``seq`` left the
screens with), never from changes still waiting for the next flush, or a screen
would see those changes twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from services.display import metrics
from services.display.sse import Client, Delivery, encode_json, frame
from services.display.state import FeedEntry, ProjectView
from services.display.venues import Venue

# The venue total adds projects in this currency only; others are never mixed in.
VENUE_CURRENCY = "CNY"


@dataclass
class ChannelLimits:
    interval_s: float = 0.2  # at most 5 messages per second per venue, hence per screen
    history: int = 256
    feed_size: int = 20  # gifts in a snapshot: more than a screen shows
    # A screen shows a dozen gifts; at hundreds per second it gets the newest of each message.
    feed_per_message: int = 50


@dataclass
class _Update:
    seq: int = 0
    projects: dict[str, ProjectView] = field(default_factory=dict)
    feed: list[FeedEntry] = field(default_factory=list)
    messages: dict[str, str] = field(default_factory=dict)
    # Donor names changed on gifts already shown: approved by staff, or masked when flagged.
    names: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.projects or self.feed or self.messages or self.names)

    def absorb(self, later: _Update) -> None:
        self.projects.update(later.projects)
        self.feed.extend(later.feed)
        self.messages.update(later.messages)
        self.names.update(later.names)
        self.seq = later.seq


def now_ms() -> int:
    return int(time.time() * 1000)


class VenueChannel:
    def __init__(self, venue: Venue, epoch: str, limits: ChannelLimits | None = None) -> None:
        self.venue = venue
        self.epoch = epoch
        self.limits = limits or ChannelLimits()
        self.seq = 0
        self.clients: set[Client] = set()
        self._projects: dict[str, ProjectView] = {}
        self._feed: deque[FeedEntry] = deque(maxlen=self.limits.feed_size)
        self._pending = _Update()
        self._history: deque[_Update] = deque(maxlen=self.limits.history)
        self._last_flush = float("-inf")
        self._timer: asyncio.TimerHandle | None = None
        self._snapshot: tuple[int, bytes] | None = None

    # --- building the published state ---------------------------------------------

    def seed(self, projects: Mapping[str, ProjectView], feed: Iterable[FeedEntry]) -> None:
        """Start from the gateway's state, as of now, without sending anything."""
        self._projects = {pid: projects[pid] for pid in self.venue.projects if pid in projects}
        self._feed.clear()
        self._feed.extend(e for e in feed if self.venue.shows_gift(e.project_id, e.venue_id))
        self._snapshot = None

    def reset(self, venue: Venue, projects: Mapping[str, ProjectView], feed: Iterable[FeedEntry]) -> None:
        """A new configuration. The sequence moves on and the history is forgotten, so any
        earlier id gets a snapshot: never a resume across two configurations."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.venue = venue
        self._feed = deque(maxlen=self.limits.feed_size)
        self._pending = _Update()
        self._history.clear()
        self.seq += 1
        self.seed(projects, feed)

    # --- changes ------------------------------------------------------------------------

    def offer_totals(self, view: ProjectView) -> None:
        if view.project_id in self.venue.projects:
            self._pending.projects[view.project_id] = view
            self._touch()

    def offer_feed(self, entry: FeedEntry) -> None:
        if self.venue.shows_gift(entry.project_id, entry.venue_id):
            self._pending.feed.append(entry)
            self._touch()

    def offer_change(self, entry: FeedEntry, what: str) -> None:
        """A gift's message ("message") or name ("name") changed by staff's decision."""
        if what == "name":
            self.offer_name(entry)
        else:
            self.offer_message(entry)

    def offer_message(self, entry: FeedEntry) -> None:
        """A message approved after its gift was queued or shown."""
        if not self.venue.show_messages or entry.message is None:
            return
        self._replace_or_note(entry, self._pending.messages, entry.message)

    def offer_name(self, entry: FeedEntry) -> None:
        """A name approved, or masked, after its gift was queued or shown."""
        if self.venue.shows_gift(entry.project_id, entry.venue_id):
            self._replace_or_note(entry, self._pending.names, entry.shown_name)

    def _replace_or_note(self, entry: FeedEntry, changes: dict[str, str], value: str) -> None:
        for index, pending in enumerate(self._pending.feed):
            if pending.entry_id == entry.entry_id:
                self._pending.feed[index] = entry
                return
        if any(shown.entry_id == entry.entry_id for shown in self._feed):
            changes[entry.entry_id] = value
            self._touch()

    def _touch(self) -> None:
        # Leading edge: the first change after a quiet spell goes out at once; changes
        # during the next interval wait for it and leave together.
        if self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last_flush + self.limits.interval_s - loop.time())
        self._timer = loop.call_later(delay, self.flush)

    def flush(self) -> None:
        self._timer = None
        update, self._pending = self._pending, _Update()
        if not update:
            return
        self._last_flush = asyncio.get_running_loop().time()
        self.seq += 1
        update.seq = self.seq
        self._projects.update(update.projects)
        self._feed.extend(update.feed)
        if update.messages or update.names:
            self._feed = deque(
                (_with_changes(e, update) for e in self._feed),
                maxlen=self.limits.feed_size,
            )
        self._history.append(update)
        metrics.MESSAGES.labels(self.venue.venue_id).inc()
        self.broadcast(frame("update", encode_json(self._update_json(update)), self.event_id(self.seq)))

    def broadcast(self, chunk: bytes) -> None:
        if not self.clients:
            return
        delivery = Delivery(len(self.clients))
        dropped = [client for client in self.clients if not client.offer(chunk, delivery)]
        for client in dropped:
            delivery.done_one()
            self.clients.discard(client)
            metrics.CLIENTS_DROPPED.labels(client.close_reason or "slow").inc()
            metrics.CONNECTED_CLIENTS.dec()

    # --- what a (re)connecting screen gets first ------------------------------------------

    def event_id(self, seq: int) -> str:
        return f"{self.epoch}-{seq}"

    def snapshot(self) -> bytes:
        if self._snapshot is None or self._snapshot[0] != self.seq:
            payload = {
                "venue": self.venue.venue_id,
                "epoch": self.epoch,
                "now": now_ms(),
                "projects": [self._projects[p].to_json() for p in self.venue.projects if p in self._projects],
                "venue_total_fen": self.venue_total_fen(),
                "currency": VENUE_CURRENCY,
                "feed": [self._entry_json(e) for e in self._feed],
            }
            self._snapshot = (self.seq, frame("snapshot", encode_json(payload), self.event_id(self.seq)))
        return self._snapshot[1]

    def resume(self, last_seq: int) -> bytes | None:
        """What a screen that saw message ``last_seq`` missed, as one message (b"" for
        nothing), or None when the history no longer reaches back that far."""
        if last_seq == self.seq:
            return b""
        if last_seq > self.seq or not self._history or self._history[0].seq > last_seq + 1:
            return None
        merged = _Update()
        for update in self._history:
            if update.seq > last_seq:
                merged.absorb(update)
        return frame("update", encode_json(self._update_json(merged)), self.event_id(self.seq))

    # --- payloads -------------------------------------------------------------------------------

    def venue_total_fen(self) -> int:
        return sum(v.raised_fen for v in self._projects.values() if v.currency == VENUE_CURRENCY)

    def _update_json(self, update: _Update) -> dict[str, Any]:
        feed = update.feed[-self.limits.feed_per_message :]
        payload: dict[str, Any] = {
            "now": now_ms(),
            "projects": [update.projects[p].to_json() for p in self.venue.projects if p in update.projects],
            "venue_total_fen": self.venue_total_fen(),
            "currency": VENUE_CURRENCY,
            "feed": [self._entry_json(e) for e in feed],
        }
        if len(update.feed) > len(feed):
            payload["feed_skipped"] = len(update.feed) - len(feed)
        if update.messages:
            payload["messages"] = [{"id": k, "message": v} for k, v in update.messages.items()]
        if update.names:
            payload["names"] = [{"id": k, "name": v} for k, v in update.names.items()]
        return payload

    def _entry_json(self, entry: FeedEntry) -> dict[str, object]:
        data = entry.to_json()
        if not self.venue.show_messages:
            data["message"] = None
        return data


def _with_changes(entry: FeedEntry, update: _Update) -> FeedEntry:
    message = update.messages.get(entry.entry_id)
    name = update.names.get(entry.entry_id)
    if message is not None:
        entry = replace(entry, message=message)
    if name is not None:
        entry = replace(entry, shown_name=name)
    return entry
