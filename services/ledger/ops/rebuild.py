"""Recompute every projection from the journal alone, and compare or replace the live ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, bindparam, delete, select, text

from services.ledger.adapters import tables as t
from services.ledger.adapters.journal_reader import iter_journal, journal_size
from services.ledger.adapters.store import (
    LedgerStore,
    disbursement_from_row,
    disbursement_to_row,
    project_to_row,
)
from services.ledger.domain.chain import iso_ms
from services.ledger.domain.journal import JournalEntry
from services.ledger.domain.projector import apply_entry
from services.ledger.domain.suspense import other_project
from services.ledger.domain.view import LedgerView

Progress = Callable[[int, int], None]  # (entries done, entries in all)


def replay(engine: Engine, progress: Progress | None = None) -> LedgerView:
    """Apply every stored decision again, in order. Never re-decides anything."""
    view = LedgerView()
    total = journal_size(engine)
    for n, stored in enumerate(iter_journal(engine, last_seq=total, with_postings=False), start=1):
        if stored.entry is None:
            raise ValueError(
                f"entry {stored.seq} ({stored.record['entry_id']}) is unbalanced: {stored.problem}"
            )
        apply_entry(stored.entry, view)
        mark_seq(view, stored.entry, stored.seq)
        if progress is not None and (n % 10_000 == 0 or n == total):
            progress(n, total)
    return view


def mark_seq(view: LedgerView, entry: JournalEntry, seq: int) -> None:
    """How far each project the entry changed is up to date (a redirection changes two)."""
    for project_id in (entry.project_id, other_project(entry.kind, entry.decision, entry.body)):
        project = view.projects.get(project_id or "")
        if project is not None:
            project.last_entry_seq = seq


@dataclass
class Comparison:
    differences: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences


_DONATION_COLUMNS = (
    "SELECT donation_id, project_id, currency, gross_fen, fee_fen, refunded_fen, to_suspense, donor_ref "
    "FROM donations"
)


def compare_with_live(
    engine: Engine, rebuilt: LedgerView, projects: frozenset[str] | None = None
) -> Comparison:
    """Compare the live projections of `projects` (all when None) with a rebuild of them."""
    live = LedgerStore(engine)
    result = Comparison()

    def mine(project_id: str) -> bool:
        return projects is None or project_id in projects

    live_projects = {p: v for p, v in live.load_projects().items() if mine(p)}
    for pid in sorted(set(live_projects) | set(rebuilt.projects)):
        a, b = live_projects.get(pid), rebuilt.projects.get(pid)
        if a is None or b is None:
            result.differences.append(
                f"project {pid}: {'missing live' if a is None else 'missing in rebuild'}"
            )
            continue
        row_a, row_b = project_to_row(a), project_to_row(b)
        for key in row_a:
            if row_a[key] != row_b[key] and not _same_instant(row_a[key], row_b[key]):
                result.differences.append(
                    f"project {pid}.{key}: live {row_a[key]!r} != rebuilt {row_b[key]!r}"
                )
    only = " WHERE project_id IN :projects" if projects is not None else ""
    params = {"projects": sorted(projects)} if projects is not None else {}
    donations_sql = text(_DONATION_COLUMNS + only)
    if projects is not None:
        donations_sql = donations_sql.bindparams(bindparam("projects", expanding=True))
    with engine.connect() as conn:
        # Raw rows: a million donations through SQLAlchemy's type processing
        # was most of the cost of a rebuild.
        live_donations = {r[0]: (*r[:6], bool(r[6]), r[7]) for r in conn.execute(donations_sql, params).all()}
        live_disbursements = {
            r["disbursement_id"]: disbursement_to_row(disbursement_from_row(r))
            for r in conn.execute(select(t.disbursements)).mappings()
            if mine(r["project_id"])
        }
        live_resolutions = {
            r["resolution_id"]: dict(r)
            for r in conn.execute(select(t.suspense_resolutions)).mappings()
            if mine(r["project_id"])
        }
    rebuilt_donations = {
        d.donation_id: (
            d.donation_id,
            d.project_id,
            d.currency,
            d.gross_fen,
            d.fee_fen,
            d.refunded_fen,
            d.to_suspense,
            d.donor_ref,
        )
        for d in rebuilt.donations.values()
    }
    if live_donations != rebuilt_donations:
        ids = set(live_donations) | set(rebuilt_donations)
        wrong = sorted(i for i in ids if live_donations.get(i) != rebuilt_donations.get(i))
        result.differences.append(
            f"donations differ in {len(wrong)} rows, e.g. {wrong[0]}: "
            f"live {live_donations.get(wrong[0])} != rebuilt {rebuilt_donations.get(wrong[0])}"
        )
    rebuilt_disbursements = {k: disbursement_to_row(v) for k, v in rebuilt.disbursements.items()}
    if live_disbursements != rebuilt_disbursements:
        result.differences.append("disbursements differ")
    rebuilt_resolutions = {
        k: dataclasses.asdict(v) for k, v in rebuilt.resolutions.items() if mine(v.project_id)
    }
    if live_resolutions != rebuilt_resolutions:
        result.differences.append("suspense resolutions differ")
    return result


def _same_instant(a: object, b: object) -> bool:
    # SQLite returns datetimes without their zone; both are UTC.
    return isinstance(a, datetime) and isinstance(b, datetime) and iso_ms(a) == iso_ms(b)


def replace_live(engine: Engine, rebuilt: LedgerView) -> None:
    """Swap the live projections for the rebuilt ones, in one transaction."""
    store = LedgerStore(engine)
    rebuilt.dirty_projects = set(rebuilt.projects)
    rebuilt.dirty_donations = set(rebuilt.donations)
    rebuilt.dirty_disbursements = set(rebuilt.disbursements)
    rebuilt.dirty_resolutions = set(rebuilt.resolutions)
    with engine.begin() as conn:
        for table in (t.project_totals, t.donations, t.disbursements, t.suspense_resolutions):
            conn.execute(delete(table))
        store.write_projections(conn, rebuilt)
