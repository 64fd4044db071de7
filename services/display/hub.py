"""The gateway's state and its venue channels, driven from the event loop thread only.

The Kafka follower hands decoded events over with ``call_soon_threadsafe``, so
nothing here needs a lock. Until the follower has caught up with the end of the
topics the hub only builds state: no screen is served a half-built total.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Iterable

from services.contracts.events import DonationFeedItem, Event, TotalsUpdated
from services.display import metrics
from services.display.channel import ChannelLimits, VenueChannel, now_ms
from services.display.decisions import FLAGGED, NAME_PREFIX
from services.display.moderation import MASKED_NAME, Moderator
from services.display.sse import Client, encode_json, frame
from services.display.state import DisplayState, FeedEntry
from services.display.venues import VenueCatalogue

log = logging.getLogger(__name__)
# How long a gift may wait for the total that includes it before it is shown anyway.
FEED_WAIT_S = 1.0
_EVENT_ID = re.compile(r"^([0-9a-f]{8,32})-([0-9]{1,18})$")


class UnknownVenue(LookupError):
    pass


class NotReady(RuntimeError):
    """The gateway has not caught up with the topics yet."""


class AtCapacity(RuntimeError):
    """This gateway already serves as many screens as it may."""


def new_epoch() -> str:
    """Unique per gateway run: the start time (so later runs sort later) and random bits
    (so two gateways started in the same millisecond still differ)."""
    return f"{time.time_ns() // 1_000_000:x}{secrets.token_hex(3)}"


def parse_event_id(text: str | None) -> tuple[str, int] | None:
    match = _EVENT_ID.match((text or "").strip())
    return (match.group(1), int(match.group(2))) if match else None


class Hub:
    def __init__(
        self,
        catalogue: VenueCatalogue,
        *,
        max_clients: int = 12000,
        client_queue: int = 32,
        limits: ChannelLimits | None = None,
        epoch: str | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.moderator = Moderator(catalogue.moderation)
        self.state = DisplayState(self.moderator)
        self.max_clients = max_clients
        self.client_queue = client_queue
        self.limits = limits or ChannelLimits()
        self.epoch = epoch or new_epoch()
        self.channels: dict[str, VenueChannel] = {}
        self.ready = False
        self.broker_reachable = True
        self._awaiting_totals: list[tuple[float, FeedEntry]] = []
        self._release_timer: asyncio.TimerHandle | None = None

    @property
    def clients(self) -> int:
        return sum(len(channel.clients) for channel in self.channels.values())

    # --- from the follower ---------------------------------------------------------------

    def ingest(self, events: Iterable[Event]) -> None:
        for event in events:
            if isinstance(event, TotalsUpdated):
                view = self.state.apply_totals(event)
                metrics.EVENTS_APPLIED.labels("totals", "applied" if view else "stale").inc()
                if view is not None and self.ready:
                    self._release_feed(view.project_id, view.as_of_seq)
                    for channel in self.channels.values():
                        channel.offer_totals(view)
            elif isinstance(event, DonationFeedItem):
                entry = self.state.apply_feed(event)
                metrics.EVENTS_APPLIED.labels("feed", "applied" if entry else "duplicate").inc()
                if entry is not None and self.ready:
                    self._offer_feed(entry)

    # A gift is shown in the same message as the total that includes it. The two come from
    # different topics (and fetches), so a gift whose total has not arrived yet waits for
    # it: a screen never lists a gift next to a total that does not count it yet. The wait
    # is bounded, in case the total never comes (a project missing from the totals topic).

    def _offer_feed(self, entry: FeedEntry) -> None:
        shown = self.state.projects.get(entry.project_id)
        if shown is not None and shown.as_of_seq >= entry.seq:
            # The total came first and may be on the screens already: it goes again with the
            # gift, so the message that lists the gift still carries the total counting it.
            for channel in self.channels.values():
                channel.offer_totals(shown)
                channel.offer_feed(entry)
            return
        loop = asyncio.get_running_loop()
        self._awaiting_totals.append((loop.time() + FEED_WAIT_S, entry))
        if self._release_timer is None:
            self._release_timer = loop.call_later(FEED_WAIT_S, self._release_overdue)

    def _release_feed(self, project_id: str, as_of_seq: int) -> None:
        if not self._awaiting_totals:
            return
        waiting: list[tuple[float, FeedEntry]] = []
        for deadline, entry in self._awaiting_totals:
            if entry.project_id == project_id and entry.seq <= as_of_seq:
                for channel in self.channels.values():
                    channel.offer_feed(entry)
            else:
                waiting.append((deadline, entry))
        self._awaiting_totals = waiting

    def _release_overdue(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiting: list[tuple[float, FeedEntry]] = []
        for deadline, entry in self._awaiting_totals:
            if deadline <= now:
                log.warning("gift %s shown without its total (seq %d)", entry.entry_id, entry.seq)
                for channel in self.channels.values():
                    channel.offer_feed(entry)
            else:
                waiting.append((deadline, entry))
        self._awaiting_totals = waiting
        self._release_timer = (
            loop.call_later(max(0.0, waiting[0][0] - now), self._release_overdue) if waiting else None
        )

    def mark_caught_up(self) -> None:
        if self.ready:
            return
        for venue in self.catalogue.venues.values():
            channel = VenueChannel(venue, self.epoch, self.limits)
            channel.seed(self.state.projects, self.state.recent_feed())
            self.channels[venue.venue_id] = channel
        self.ready = True
        metrics.CAUGHT_UP.set(1)
        log.info("caught up: %d projects, %d recent gifts", len(self.state.projects), len(self.state.feed))

    def set_broker_reachable(self, reachable: bool) -> None:
        if reachable != self.broker_reachable:
            self.broker_reachable = reachable
            metrics.BROKER_REACHABLE.set(1 if reachable else 0)
            self.heartbeat()  # screens learn at once that their figures have stopped moving

    # --- screens -------------------------------------------------------------------------------

    def open_stream(self, venue_id: str, last_event_id: str | None) -> tuple[Client, bytes]:
        """A new client of the venue and the first bytes of its stream."""
        if venue_id not in self.catalogue.venues:
            raise UnknownVenue(venue_id)
        if not self.ready:
            metrics.CLIENTS_REJECTED.labels("not_ready").inc()
            raise NotReady()
        if self.clients >= self.max_clients:
            metrics.CLIENTS_REJECTED.labels("capacity").inc()
            raise AtCapacity()
        channel = self.channels[venue_id]
        first: bytes | None = None
        seen = parse_event_id(last_event_id)
        if seen is not None and seen[0] == self.epoch:
            first = channel.resume(seen[1])
        if first is None:
            first, kind = channel.snapshot(), "snapshot"
        else:
            kind = "resume" if first else "current"
        metrics.RESUMES.labels(kind).inc()
        client = Client(venue_id, self.client_queue)
        channel.clients.add(client)
        metrics.CONNECTED_CLIENTS.inc()
        return client, first + self._heartbeat_frame()

    def close_stream(self, client: Client) -> None:
        channel = self.channels.get(client.venue_id)
        if channel is not None and client in channel.clients:
            channel.clients.discard(client)
            metrics.CONNECTED_CLIENTS.dec()

    def end_all(self, reason: str) -> None:
        """End every stream cleanly (shutdown): browsers reconnect, to another gateway if any."""
        for channel in self.channels.values():
            self._end_streams(channel, reason)

    def heartbeat(self) -> None:
        chunk = self._heartbeat_frame()
        for channel in self.channels.values():
            channel.broadcast(chunk)

    async def run_heartbeats(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            self.heartbeat()

    def _heartbeat_frame(self) -> bytes:
        live = self.ready and self.broker_reachable
        return frame("heartbeat", encode_json({"now": now_ms(), "live": live, "epoch": self.epoch}))

    # --- staff ------------------------------------------------------------------------------------

    def decide(self, entry_id: str, decision: str) -> None:
        """Apply staff's decision on a message or (id `name:<entry>`) a name, taken here or on
        another gateway: an approved message or name this gateway held goes to the screens
        showing its gift; a flagged name is masked on them."""
        if entry_id.startswith(NAME_PREFIX):
            self._decide_name(entry_id.removeprefix(NAME_PREFIX), decision)
            return
        released = self.moderator.decide(entry_id, decision)
        if released is not None:
            self._change_entry(self.state.attach_message(entry_id, released.text), "message")

    def _decide_name(self, entry_id: str, decision: str) -> None:
        if decision == FLAGGED:
            self.moderator.decide_name(entry_id, decision)
            entry = self.state.entry(entry_id)
            if entry is not None and entry.shown_name not in ("", MASKED_NAME):
                self.moderator.flag_name(entry_id, entry.shown_name, entry.project_id, entry.venue_id)
                self._change_entry(self.state.attach_name(entry_id, MASKED_NAME), "name")
            return
        released = self.moderator.decide_name(entry_id, decision)
        if released is not None:
            self._change_entry(self.state.attach_name(entry_id, released.text), "name")

    def _change_entry(self, entry: FeedEntry | None, what: str) -> None:
        if entry is None:
            return
        # A gift still waiting for its total goes out with the change when it is released.
        self._awaiting_totals = [
            (deadline, entry if waiting.entry_id == entry.entry_id else waiting)
            for deadline, waiting in self._awaiting_totals
        ]
        if self.ready:
            for channel in self.channels.values():
                channel.offer_change(entry, what)

    def reconfigure(self, catalogue: VenueCatalogue) -> None:
        """Apply a new venue file. Screens of a changed or removed venue reload their page
        (the title and theme are in it); the others carry on undisturbed."""
        self.catalogue = catalogue
        self.moderator.policy = catalogue.moderation
        if not self.ready:
            return
        for venue_id in list(self.channels):
            if venue_id not in catalogue.venues:
                self._end_streams(self.channels.pop(venue_id), "reconfigured", reload=True)
        for venue in catalogue.venues.values():
            channel = self.channels.get(venue.venue_id)
            if channel is None:
                channel = VenueChannel(venue, self.epoch, self.limits)
                channel.seed(self.state.projects, self.state.recent_feed())
                self.channels[venue.venue_id] = channel
            elif channel.venue != venue:
                self._end_streams(channel, "reconfigured", reload=True)
                channel.reset(venue, self.state.projects, self.state.recent_feed())

    def _end_streams(self, channel: VenueChannel, reason: str, reload: bool = False) -> None:
        last = frame("reload", encode_json({"reason": reason})) if reload else None
        for client in channel.clients:
            client.end(reason, last)
            metrics.CLIENTS_DROPPED.labels(reason).inc()
        metrics.CONNECTED_CLIENTS.dec(len(channel.clients))
        channel.clients.clear()
