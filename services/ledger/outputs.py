"""What the ledger publishes after a batch has committed: outcomes, feed items, totals.

Built from plain data (a committed entry's id, kind and seq; the gift event and
its project's name; a project's totals), so the same code runs wherever the
batch is written: in the ledger's own process or in its writer process.
"""

from __future__ import annotations

from typing import Any

from services.contracts import events as ev
from services.contracts.codec import EventCodec
from services.contracts.topics import Topics
from services.ledger.domain.masking import shown_name
from services.ledger.domain.state import ProjectTotals
from services.ledger.ports import Headers, OutputPort

LEDGER_ACTOR = "ledger"

# (entry_id, project_id, kind, decision, reason, seq) of a committed entry
Outcome = tuple[str, str, str, str, str, int]
# a posted gift or offline taking, its journal seq and its project's name
FeedSource = tuple[ev.Event, int, str]
DeadLetter = tuple[str, bytes | None, bytes, Headers]


class OutputPublisher:
    def __init__(self, output: OutputPort, topics: Topics, codec: EventCodec | None = None) -> None:
        self.output = output
        self.topics = topics
        self.codec = codec or EventCodec()

    def dead_letters(self, letters: list[DeadLetter]) -> None:
        for topic, key, value, headers in letters:
            self.output.send(topic, key, value, headers)

    def outcomes(self, outcomes: list[Outcome], now: Any) -> None:
        for entry_id, project_id, kind, decision, reason, seq in outcomes:
            outcome = ev.LedgerOutcome(
                event_id=ev.derived_id("outcome", entry_id),
                occurred_at=now,
                actor=LEDGER_ACTOR,
                project_id=project_id,
                source_event_id=entry_id,
                kind=kind,
                decision=decision,
                reason=reason,
                seq=seq,
            )
            self.output.send(self.topics.outcomes, project_id.encode(), self.codec.encode(outcome))

    def feed(self, sources: list[FeedSource]) -> None:
        for event, seq, project_name in sources:
            item = feed_item(event, seq, project_name)
            if item is not None:
                self.output.send(self.topics.feed, event.project_id.encode(), self.codec.encode(item))

    def totals(self, projects: list[ProjectTotals]) -> None:
        for project in projects:
            update = totals_event(project)
            self.output.send(self.topics.totals, project.project_id.encode(), self.codec.encode(update))

    def flush(self) -> None:
        self.output.flush()


def feed_item(event: ev.Event, seq: int, project_name: str) -> ev.DonationFeedItem | None:
    """A gift's line on the venue screens, its name masked per the donor's choice; None if excluded."""
    common: dict[str, Any] = dict(
        event_id=ev.derived_id("feed", event.event_id),
        occurred_at=event.occurred_at,
        actor=LEDGER_ACTOR,
        project_id=event.project_id,
        source_event_id=event.event_id,
        project_name=project_name,
        seq=seq,
    )
    if isinstance(event, ev.DonationConfirmed):
        name = shown_name(event.anonymity, event.display_name)
        if name is None:
            return None
        return ev.DonationFeedItem(
            **common,
            amount_fen=event.gross_fen,
            currency=event.currency,
            kind="gift",
            channel=event.channel,
            venue_id=event.venue_id,
            shown_name=name,
            # Shown only after the display's moderation step; never written to the journal.
            message=event.message,
        )
    if isinstance(event, ev.OfflineDonationRecorded):
        return ev.DonationFeedItem(
            **common,
            amount_fen=event.amount_fen,
            currency=event.currency,
            kind=event.kind,
            channel="venue",
            venue_id=event.venue_id,
            shown_name="",
            item=event.item,
        )
    return None


def totals_event(project: ProjectTotals) -> ev.TotalsUpdated:
    return ev.TotalsUpdated(
        event_id=ev.derived_id(f"totals-{project.last_entry_seq}", project.project_id),
        occurred_at=ev.utc_now_ms(),
        actor=LEDGER_ACTOR,
        project_id=project.project_id,
        name=project.plan.get("name", project.project_id),
        name_en=project.plan.get("name_en"),
        status=str(project.status),
        currency=project.currency,
        goal_fen=project.goal_fen,
        raised_fen=project.raised_fen,
        gross_fen=project.gross_fen,
        fees_fen=project.fees_fen,
        offline_fen=project.offline_cash_fen + project.offline_sales_fen,
        donations_count=project.donations_count,
        refunded_fen=project.refunded_fen,
        disbursed_fen=project.disbursed_fen,
        available_fen=project.fund_fen,
        as_of_seq=project.last_entry_seq,
    )
