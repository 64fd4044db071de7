"""A project's disclosure report in the shape the Charity Law asks for (Art. 71-73): the plan
(purpose, beneficiaries, use of funds, cost cap, dates, filing numbers), money raised, its use,
the balance, progress reports and corrections, all as the journal holds them at one instant.

The figures are a project statement over the project's whole life up to that instant, so the
report and the statement cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.ledger.domain import journal as j
from services.ledger.domain.journal import JournalEntry
from services.ledger.domain.statements import ProjectStatement, project_statement

BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Published:
    """A progress report or a correction, as published (applied by the ledger)."""

    seq: int
    effective_at: datetime
    text: str
    actor: str
    corrects_seq: int | None = None  # a correction: the entry it corrects
    corrects_kind: str = ""


@dataclass(frozen=True)
class DisclosureReport:
    project_id: str
    status: str
    plan: Mapping[str, Any]
    as_of: datetime
    figures: ProjectStatement
    progress: tuple[Published, ...]
    corrections: tuple[Published, ...]

    @property
    def currency(self) -> str:
        return self.figures.currency

    @property
    def raised_fen(self) -> int:
        return self.figures.total_in_fen


def disclosure_report(
    project_id: str,
    status: str,
    plan: Mapping[str, Any],
    currency: str,
    entries: Iterable[tuple[int, JournalEntry]],
    as_of: datetime,
) -> DisclosureReport:
    """The report at `as_of` from (seq, entry) pairs in journal order: the project's own entries
    and any other that moved money into its accounts."""
    pairs = list(entries)
    figures = project_statement(project_id, currency, pairs, BEGINNING, as_of)
    kinds = {e.entry_id: (seq, e.kind) for seq, e in pairs}
    progress: list[Published] = []
    corrections: list[Published] = []
    for seq, e in pairs:
        if e.project_id != project_id or e.decision == j.REJECTED or e.effective_at >= as_of:
            continue
        actor = str(e.body.get("actor", ""))
        if e.kind == "ProgressReported":
            progress.append(Published(seq, e.effective_at, str(e.body.get("summary", "")), actor))
        elif e.kind == "CorrectionPublished":
            corrected = kinds.get(str(e.body.get("corrects_event_id")), (None, ""))
            corrections.append(Published(seq, e.effective_at, str(e.body.get("note", "")), actor, *corrected))
    return DisclosureReport(project_id, status, plan, as_of, figures, tuple(progress), tuple(corrections))
