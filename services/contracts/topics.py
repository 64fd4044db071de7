"""The topic catalogue: every topic the services share, with how it is laid out.

Names can carry a prefix so that tests and benchmarks get a private set of
topics on a shared broker without touching each other's data.
"""

from __future__ import annotations

from dataclasses import dataclass

# Input topics are keyed by project_id and must share one partition count, so
# that one ledger instance owns every event of a project (docs/architecture.md).
INPUT_PARTITIONS = 3


DAY_MS = 24 * 3600 * 1000
# How long each topic keeps its records (docs/operations.md, "Retention"). Inputs: a
# week, Kafka's own default, written out so that a cluster's other default cannot shorten
# it; the ledger must not be down longer, or unread records age out. Outcomes are derived
# from the journal and published again from it. The feed carries donors' opened messages
# and masked names: a week, then gone. Dead letters wait a month for someone to look.
# The journal topic is kept for ever, and the checkpoints topic with it: a restore from
# the journal checks every signed head with the key published there, which the ledger
# sends once per start (a year's retention would drop the key of a ledger that ran for a
# year). The totals are compacted (the latest per project).
INPUT_RETENTION_MS = 7 * DAY_MS
OUTCOMES_RETENTION_MS = 7 * DAY_MS
FEED_RETENTION_MS = 7 * DAY_MS
DLQ_RETENTION_MS = 30 * DAY_MS


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    compacted: bool = False
    # Kept for ever: the journal topic is the order of record others mirror.
    forever: bool = False
    # Kept this long, whatever the broker's default: what holds personal text must age out.
    retention_ms: int | None = None


@dataclass(frozen=True)
class Topics:
    prefix: str = ""

    def _name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def projects(self) -> str:
        return self._name("charity.projects")

    @property
    def donations(self) -> str:
        return self._name("charity.donations")

    @property
    def disbursements(self) -> str:
        return self._name("charity.disbursements")

    @property
    def totals(self) -> str:
        return self._name("charity.ledger.totals")

    @property
    def feed(self) -> str:
        return self._name("charity.ledger.feed")

    @property
    def outcomes(self) -> str:
        return self._name("charity.ledger.outcomes")

    @property
    def checkpoints(self) -> str:
        return self._name("charity.ledger.checkpoints")

    @property
    def journal(self) -> str:
        return self._name("charity.ledger.journal")

    @property
    def dlq(self) -> str:
        return self._name("charity.dlq")

    @property
    def inputs(self) -> tuple[str, str, str]:
        return (self.projects, self.donations, self.disbursements)

    def specs(self, input_partitions: int = INPUT_PARTITIONS) -> list[TopicSpec]:
        return [
            TopicSpec(self.projects, input_partitions, retention_ms=INPUT_RETENTION_MS),
            TopicSpec(self.donations, input_partitions, retention_ms=INPUT_RETENTION_MS),
            TopicSpec(self.disbursements, input_partitions, retention_ms=INPUT_RETENTION_MS),
            TopicSpec(self.totals, input_partitions, compacted=True),
            TopicSpec(self.feed, 1, retention_ms=FEED_RETENTION_MS),
            TopicSpec(self.outcomes, input_partitions, retention_ms=OUTCOMES_RETENTION_MS),
            # Kept as long as the journal: the signed heads and the keys a restore checks them with.
            TopicSpec(self.checkpoints, 1, forever=True),
            # One partition: the journal's order is global, not per project.
            TopicSpec(self.journal, 1, forever=True),
            TopicSpec(self.dlq, 1, retention_ms=DLQ_RETENTION_MS),
        ]
