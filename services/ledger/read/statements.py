"""A project's books for the statement and the disclosure report: the journal entries that
touched its accounts (a redirection into it is booked on another project's entry), read
through the read side's engine, composed by domain/statements.py and domain/disclosure_report.py."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy import Engine, func, select, union

from services.ledger.adapters import tables as t
from services.ledger.adapters.journal_reader import journal_entry
from services.ledger.domain import accounts as acc
from services.ledger.domain.disclosure_report import DisclosureReport, Published, disclosure_report
from services.ledger.domain.journal import JournalEntry
from services.ledger.domain.statements import ProjectStatement, project_statement
from services.ledger.read.queries import LedgerQueries

__all__ = ["DisclosureReport", "ProjectBooks", "ProjectStatement", "Published"]


class ProjectBooks:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.queries = LedgerQueries(engine)

    def entries(self, project_id: str, until: datetime) -> list[tuple[int, JournalEntry]]:
        """(seq, entry) in journal order: the project's own entries and those that moved money in
        or out of its accounts, effective before `until`. Only those rows are read and parsed."""
        accounts = [acc.project_fund(project_id), acc.project_held(project_id)]
        wanted = union(
            select(t.journal.c.seq).where(t.journal.c.project_id == project_id),
            select(t.postings.c.seq).where(t.postings.c.account.in_(accounts)),
        ).subquery()
        query = (
            select(t.journal.c.seq, t.journal.c.canonical)
            # In UTC: SQLite compares the stored text, which is UTC.
            .where(
                t.journal.c.seq.in_(select(wanted.c.seq)), t.journal.c.effective_at < until.astimezone(UTC)
            )
            .order_by(t.journal.c.seq)
        )
        with self.engine.connect() as conn:
            return [(seq, journal_entry(orjson.loads(canonical))) for seq, canonical in conn.execute(query)]

    def statement(self, project_id: str, start: datetime, end: datetime) -> ProjectStatement | None:
        """The project's statement of [start, end); None for an unknown project."""
        project = self.queries.project(project_id)
        if project is None:
            return None
        statement = project_statement(project_id, project.currency, self.entries(project_id, end), start, end)
        statement.booked_fen = self.booked(project_id, end, statement.last_seq)
        return statement

    def booked(self, project_id: str, until: datetime, last_seq: int) -> int:
        """The fund and held accounts' balance from the postings table, summed by the database:
        the legs of entries effective before `until`, up to the seq the entries were read at."""
        p, jn = t.postings, t.journal
        query = (
            select(func.sum(p.c.amount))
            .join(jn, jn.c.seq == p.c.seq)
            .where(
                p.c.account.in_([acc.project_fund(project_id), acc.project_held(project_id)]),
                p.c.seq <= last_seq,
                jn.c.effective_at < until.astimezone(UTC),  # in UTC, as SQLite stores it
            )
        )
        with self.engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    def disclosure(self, project_id: str, as_of: datetime) -> DisclosureReport | None:
        """The project's disclosure report as the journal stood at `as_of`; None if unknown."""
        project = self.queries.project(project_id)
        if project is None:
            return None
        report = disclosure_report(
            project_id,
            str(project.status),
            project.plan,
            project.currency,
            self.entries(project_id, as_of),
            as_of,
        )
        report.figures.booked_fen = self.booked(project_id, as_of, report.figures.last_seq)
        return report
