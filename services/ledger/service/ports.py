"""What the ledger needs from the outside world, as small interfaces."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from services.ledger.domain.journal import JournalEntry
from services.ledger.domain.state import ProjectTotals
from services.ledger.domain.view import LedgerView

Headers = list[tuple[str, bytes]]
TopicPartition = tuple[str, int]
# The output streams whose acknowledged position the store keeps (output_watermarks):
# a journal seq, and a tree size.
JOURNAL_STREAM = "journal"
TREE_HEADS_STREAM = "tree-heads"


class RecordRefused(Exception):
    """The store refused what a batch holds (a constraint, a type, a length): the
    same records would be refused again, so retrying them cannot help."""


class StoreUnavailable(Exception):
    """The store cannot be reached, or is busy, now: the same batch may succeed later."""


@dataclass
class Batch:
    """What one committed batch consists of."""

    group_id: str
    recorded_at: datetime
    entries: list[tuple[JournalEntry, str]] = field(default_factory=list)  # (entry, source)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)  # next offset to read
    # Feed items of this batch's gifts by entry id, for the outbox (see PublishPlan.feed).
    feed: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The journal seq up to which the broker has acknowledged every output, if it moved.
    acknowledged: int | None = None


# One committed entry as the relay publishes it on the journal topic:
# (seq, entry_id, project_id, kind, decision, reason, canonical JSON, prev_hash, entry_hash,
#  source: the input record's topic/partition/offset).
CommittedRow = tuple[int, str, str, str, str, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as read from an input topic, before decoding."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None

    @property
    def source(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


class OutputPort(Protocol):
    def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers | None = None) -> None: ...

    def flush(self, timeout: float = 30.0) -> None:
        """Block until every message sent so far is acknowledged; raise if any failed."""


class LedgerStorePort(Protocol):
    """The journal's storage as the batch loop uses it (`adapters.store.LedgerStore`)."""

    def load_projects(self) -> dict[str, ProjectTotals]: ...

    def known_entry_ids(self, entry_ids: Iterable[str]) -> set[str]: ...

    def recorded_entries(self, entry_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The canonical records of the journal entries with these ids."""
        ...

    def prefetch(
        self,
        view: LedgerView,
        donation_ids: set[str],
        disbursement_ids: set[str],
        resolution_ids: frozenset[str] = frozenset(),
    ) -> None: ...

    def stored_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]: ...

    def commit_batch(self, batch: Batch, view: LedgerView) -> list[CommittedRow]:
        """Append the batch's entries and its feed items, upsert what they changed, store its
        offsets and the outputs watermark: atomically. Returns the appended entries."""
        ...

    def output_watermark(self, stream: str) -> int:
        """How far the broker acknowledged an output stream ('journal': a seq)."""
        ...

    def store_watermark(self, stream: str, seq: int) -> None:
        """Move a stream's watermark forward (never back); publish beyond it after a restart."""
        ...

    def committed_after(self, seq: int, limit: int) -> tuple[list[CommittedRow], dict[int, dict[str, Any]]]:
        """Up to `limit` committed entries after `seq`, and the outbox's feed items among them."""
        ...


class DonorKeys(Protocol):
    """Donors' data keys, from the donor store: they open the personal text sealed on the
    input topics (services/contracts/sealed.py). An erased donor has no key any more."""

    def keys_for(self, donor_refs: Iterable[str]) -> dict[str, bytes]: ...
