"""What the screens may show, built only from the ledger's output events.

Totals come from TotalsUpdated alone and never from adding up feed items: the feed
topic is trimmed to a recent window, so a sum of gifts would be a wrong number.
``as_of_seq`` orders the updates of a project; an older one (a republish by a
ledger instance that just lost the project in a rebalance, say) is ignored.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from services.contracts.events import DonationFeedItem, TotalsUpdated
from services.display.moderation import Moderator

# Enough recent gifts to seed a venue whose configuration changes at run time.
FEED_MEMORY = 2000
# Feed ids remembered to drop redelivered items (the ledger publishes at least once).
SEEN_IDS = 20_000


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class ProjectView:
    """The figures of one project a screen shows; amounts in fen."""

    project_id: str
    name: str
    name_en: str | None
    status: str
    currency: str
    goal_fen: int
    raised_fen: int
    offline_fen: int
    donations_count: int
    as_of_seq: int

    @classmethod
    def from_event(cls, event: TotalsUpdated) -> ProjectView:
        return cls(
            project_id=event.project_id,
            name=event.name,
            name_en=event.name_en,
            status=event.status,
            currency=event.currency,
            goal_fen=event.goal_fen,
            raised_fen=event.raised_fen,
            offline_fen=event.offline_fen,
            donations_count=event.donations_count,
            as_of_seq=event.as_of_seq,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.project_id,
            "name": self.name,
            "name_en": self.name_en,
            "status": self.status,
            "currency": self.currency,
            "goal_fen": self.goal_fen,
            "raised_fen": self.raised_fen,
            "offline_fen": self.offline_fen,
            "donations_count": self.donations_count,
            "as_of_seq": self.as_of_seq,
        }


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One gift as screens show it: the name masked by the ledger, the message moderated here."""

    entry_id: str
    seq: int
    project_id: str
    project_name: str
    amount_fen: int
    currency: str
    kind: str
    channel: str
    venue_id: str | None
    shown_name: str
    item: str | None
    occurred_at_ms: int
    message: str | None = None

    @classmethod
    def from_event(cls, event: DonationFeedItem) -> FeedEntry:
        return cls(
            entry_id=event.event_id,
            seq=event.seq,
            project_id=event.project_id,
            project_name=event.project_name,
            amount_fen=event.amount_fen,
            currency=event.currency,
            kind=event.kind,
            channel=event.channel,
            venue_id=event.venue_id,
            shown_name=event.shown_name,
            item=event.item,
            occurred_at_ms=epoch_ms(event.occurred_at),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.entry_id,
            "seq": self.seq,
            "project_id": self.project_id,
            "project_name": self.project_name,
            "amount_fen": self.amount_fen,
            "currency": self.currency,
            "kind": self.kind,
            "channel": self.channel,
            "name": self.shown_name,
            "item": self.item,
            "message": self.message,
            "at": self.occurred_at_ms,
        }


class DisplayState:
    """Latest totals per project and the recent feed; owned by one thread (the event loop)."""

    def __init__(self, moderator: Moderator) -> None:
        self.moderator = moderator
        self.projects: dict[str, ProjectView] = {}
        self.feed: deque[FeedEntry] = deque(maxlen=FEED_MEMORY)
        self._seen: OrderedDict[str, None] = OrderedDict()

    def apply_totals(self, event: TotalsUpdated) -> ProjectView | None:
        """The new view of the project, or None when the update is stale or changes nothing."""
        current = self.projects.get(event.project_id)
        if current is not None and event.as_of_seq < current.as_of_seq:
            return None
        view = ProjectView.from_event(event)
        if view == current:
            return None
        self.projects[event.project_id] = view
        return view

    def apply_feed(self, event: DonationFeedItem) -> FeedEntry | None:
        """The entry to show, or None when this item was seen before."""
        if event.event_id in self._seen:
            return None
        self._seen[event.event_id] = None
        if len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        entry = FeedEntry.from_event(event)
        where = (entry.project_id, entry.venue_id)
        verdict = self.moderator.review(entry.entry_id, event.message, *where)
        entry = replace(
            entry,
            message=verdict,
            shown_name=self.moderator.review_name(entry.entry_id, entry.shown_name, *where),
        )
        self.feed.append(entry)
        return entry

    def attach_message(self, entry_id: str, message: str) -> FeedEntry | None:
        """Show a message that staff approved after its gift was already on screen."""
        return self._change(entry_id, message=message)

    def attach_name(self, entry_id: str, name: str) -> FeedEntry | None:
        """Show a name staff approved, or the masked label for one they flagged."""
        return self._change(entry_id, shown_name=name)

    def entry(self, entry_id: str) -> FeedEntry | None:
        return next((e for e in self.feed if e.entry_id == entry_id), None)

    def _change(self, entry_id: str, **changes: str) -> FeedEntry | None:
        for index, entry in enumerate(self.feed):
            if entry.entry_id == entry_id:
                updated = replace(entry, **changes)  # type: ignore[arg-type]
                self.feed[index] = updated
                return updated
        return None

    def recent_feed(self) -> Iterator[FeedEntry]:
        return iter(self.feed)
