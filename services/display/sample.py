"""The ledger's output events for the demo projects, for tests, benchmarks and rehearsals.

``LedgerEcho`` plays the ledger's publishing side only: for each gift it produces the
DonationFeedItem and the project's new TotalsUpdated, as the ledger does after a
committed batch. It lets the display be exercised on a real broker without the
ledger and its database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaProducer

from services.contracts.codec import EventCodec
from services.contracts.events import DonationFeedItem, Event, TotalsUpdated, utc_now_ms
from services.contracts.topics import Topics
from services.platform.kafka_io import make_producer


@dataclass(frozen=True)
class DemoProject:
    name: str
    name_en: str
    goal_fen: int


DEMO_PROJECTS: dict[str, DemoProject] = {
    "elderly-meals": DemoProject("乐龄助餐", "Meals for seniors", 200_000_00),
    "child-protection": DemoProject("SiP童行家 未成年人保护", "SiP child protection", 300_000_00),
    "community-embedded": DemoProject("社区嵌入式服务", "Community-embedded services", 150_000_00),
    "veterans-care": DemoProject("退役军人关爱", "Care for veterans", 120_000_00),
    "charity-plants": DemoProject("慈善植造社 义卖", "Charity plant sale", 50_000_00),
}


def totals_event(
    project_id: str,
    *,
    raised_fen: int,
    as_of_seq: int,
    donations_count: int = 0,
    offline_fen: int = 0,
    status: str = "fundraising",
    goal_fen: int | None = None,
) -> TotalsUpdated:
    project = DEMO_PROJECTS.get(project_id, DemoProject(project_id, project_id, 100_000_00))
    return TotalsUpdated(
        event_id=str(uuid.uuid4()),
        occurred_at=utc_now_ms(),
        actor="ledger",
        project_id=project_id,
        name=project.name,
        name_en=project.name_en,
        status=status,
        currency="CNY",
        goal_fen=project.goal_fen if goal_fen is None else goal_fen,
        raised_fen=raised_fen,
        gross_fen=raised_fen - offline_fen,
        fees_fen=0,
        offline_fen=offline_fen,
        donations_count=donations_count,
        refunded_fen=0,
        disbursed_fen=0,
        available_fen=raised_fen,
        as_of_seq=as_of_seq,
    )


def feed_event(
    project_id: str,
    *,
    amount_fen: int,
    seq: int,
    shown_name: str = "爱心人士",
    kind: str = "gift",
    channel: str = "qr",
    venue_id: str | None = None,
    item: str | None = None,
    message: str | None = None,
) -> DonationFeedItem:
    project = DEMO_PROJECTS.get(project_id, DemoProject(project_id, project_id, 0))
    return DonationFeedItem(
        event_id=str(uuid.uuid4()),
        occurred_at=utc_now_ms(),
        actor="ledger",
        project_id=project_id,
        source_event_id=str(uuid.uuid4()),
        project_name=project.name,
        amount_fen=amount_fen,
        currency="CNY",
        kind=kind,
        channel=channel,
        venue_id=venue_id,
        shown_name="" if kind != "gift" else shown_name,
        item=item,
        message=message,
        seq=seq,
    )


@dataclass
class _Running:
    raised_fen: int = 0
    offline_fen: int = 0
    count: int = 0


@dataclass
class LedgerEcho:
    """Produces what the ledger would publish for each gift (feed item, then totals)."""

    bootstrap: str
    topics: Topics
    producer_config: dict[str, Any] = field(default_factory=dict)
    seq: int = 0

    def __post_init__(self) -> None:
        self.codec = EventCodec()
        self.producer: KafkaProducer = make_producer(self.bootstrap, **self.producer_config)
        self._running: dict[str, _Running] = {}

    def send(self, event: Event) -> Any:
        topic = self.topics.totals if isinstance(event, TotalsUpdated) else self.topics.feed
        return self.producer.send(topic, key=event.project_id.encode(), value=self.codec.encode(event))

    def gift(
        self,
        project_id: str,
        amount_fen: int,
        *,
        shown_name: str = "爱心人士",
        kind: str = "gift",
        channel: str = "qr",
        venue_id: str | None = None,
        item: str | None = None,
        message: str | None = None,
    ) -> tuple[Any, Any]:
        """Send one gift's two events; returns their send futures (feed, totals)."""
        self.seq += 1
        running = self._running.setdefault(project_id, _Running())
        running.raised_fen += amount_fen
        running.count += 1
        if kind != "gift":
            running.offline_fen += amount_fen
        feed = feed_event(
            project_id,
            amount_fen=amount_fen,
            seq=self.seq,
            shown_name=shown_name,
            kind=kind,
            channel=channel,
            venue_id=venue_id,
            item=item,
            message=message,
        )
        totals = totals_event(
            project_id,
            raised_fen=running.raised_fen,
            as_of_seq=self.seq,
            donations_count=running.count,
            offline_fen=running.offline_fen,
        )
        return self.send(feed), self.send(totals)

    def set_totals(self, project_id: str, raised_fen: int, donations_count: int, offline_fen: int = 0) -> Any:
        """Start a project from given figures (as if earlier gifts had been booked)."""
        self.seq += 1
        self._running[project_id] = _Running(raised_fen, offline_fen, donations_count)
        return self.send(
            totals_event(
                project_id,
                raised_fen=raised_fen,
                as_of_seq=self.seq,
                donations_count=donations_count,
                offline_fen=offline_fen,
            )
        )

    def raised(self, project_id: str) -> int:
        return self._running.get(project_id, _Running()).raised_fen

    def flush(self, timeout: float = 30.0) -> None:
        self.producer.flush(timeout=timeout)

    def close(self) -> None:
        self.producer.close(timeout=10)
