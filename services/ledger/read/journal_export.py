"""The journal for accountants: its lines read in seq order as a stream, as CSV or an XLSX workbook.

The lines come through a server-side cursor (`stream_results`, `yield_per`): a year of
a large project, or a million entries of the federation, is never in memory at once.
One query reads them, so the export is one consistent snapshot of the journal. The
period is of effective times (when it happened), in China time: see export_format.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import orjson
import xlsxwriter
from sqlalchemy import Engine, Select, select, union

from services.ledger.adapters import tables as t
from services.ledger.domain import accounts as acc
from services.ledger.domain.channels import GIFT_KINDS, REDIRECTION_KIND, channel_of_body
from services.ledger.read.export_format import (
    ALL_TIME,
    AMOUNT,
    COLUMNS,
    CREDIT,
    DEBIT,
    HEADER,
    JournalLine,
    Period,
    rows,
)

CHUNK = 5_000
# An XLSX sheet holds 1,048,576 rows; a longer export goes on over further sheets.
SHEET_ROWS = 1_048_575
_WIDTHS = {"effective_at": 30, "recorded_at": 30, "account": 28, "account_name_zh": 26, "account_name_en": 34}


class JournalExport:
    """Reads the journal's lines for an export (of some projects, of a period) as they stream."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _query(self, projects: Collection[str] | None, period: Period) -> Select[Any]:
        j, p = t.journal, t.postings
        query = (
            select(
                j.c.seq,
                j.c.entry_id,
                j.c.project_id,
                j.c.kind,
                j.c.effective_at,
                j.c.recorded_at,
                j.c.decision,
                j.c.reason,
                j.c.prev_hash,
                j.c.entry_hash,
                p.c.leg,
                p.c.account,
                p.c.currency,
                p.c.amount,
                j.c.canonical,  # the hashed entry: who did it, and a gift's channel
            )
            .select_from(j.outerjoin(p, p.c.seq == j.c.seq))
            .order_by(j.c.seq, p.c.leg)
        )
        if projects is not None:
            # The projects' own entries, and others' that moved money into or out of their
            # accounts (a redirection out of another project's suspense is journaled under that
            # project): summing the rows by account then gives the projects' balances. A union,
            # so each side keeps its index.
            wanted = sorted(projects)
            accounts = [
                account
                for project in wanted
                for account in (acc.project_fund(project), acc.project_held(project), acc.suspense(project))
            ]
            seqs = union(
                select(j.c.seq).where(j.c.project_id.in_(wanted)),
                select(p.c.seq).where(p.c.account.in_(accounts)),
            ).subquery()
            query = query.where(j.c.seq.in_(select(seqs.c.seq)))
        # In UTC, as the journal keeps them: SQLite compares the stored text, without its zone.
        if period.start is not None:
            query = query.where(j.c.effective_at >= period.start.astimezone(UTC))
        if period.end is not None:
            query = query.where(j.c.effective_at < period.end.astimezone(UTC))
        return query

    def lines(
        self, projects: Collection[str] | None = None, period: Period = ALL_TIME
    ) -> Iterator[JournalLine]:
        """The lines of the entries of `projects` (None: all) in the period, in seq and leg order:
        their own entries and those of other projects that moved money into their accounts."""
        if projects is not None and not projects:
            return
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(
                self._query(projects, period)
            )
            seq, named = None, ("", "")
            for row in result:
                if row.seq != seq:  # an entry's postings share its canonical text: parsed once
                    seq, named = row.seq, _actor_and_channel(row.kind, row.canonical)
                yield JournalLine._make((*row[:-1], *named))


def _actor_and_channel(kind: str, canonical: str) -> tuple[str, str]:
    body = orjson.loads(canonical).get("body") or {}
    channel = channel_of_body(kind, body).key if kind in GIFT_KINDS or kind == REDIRECTION_KIND else ""
    return str(body.get("actor", "")), channel


def write_xlsx(lines: Iterator[JournalLine], path: Path, sheet_rows: int = SHEET_ROWS) -> int:
    """The lines as an XLSX workbook at `path`, written row by row (XlsxWriter's constant_memory
    mode keeps one row in memory); returns the number of lines.

    Amounts are number cells shown with two decimals (the format stores binary floating
    point, the nearest to each exact yuan); the exact amount is in the integer amount_fen
    column. More lines than a sheet holds go on over sheets 'journal 2', 'journal 3', …
    """
    # Text stays text: no formula, link or number is made of what a cell says.
    options = {"constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    workbook = xlsxwriter.Workbook(str(path), options)
    bold = workbook.add_format({"bold": True})
    money = workbook.add_format({"num_format": "0.00"})
    count, sheet, row_no = 0, None, sheet_rows
    for row in rows(lines):
        if row_no == sheet_rows:
            sheet = workbook.add_worksheet(
                "journal" if sheet is None else f"journal {count // sheet_rows + 1}"
            )
            for column, (key, _) in enumerate(COLUMNS):
                sheet.set_column(column, column, _WIDTHS.get(key, 14))
            sheet.write_row(0, 0, HEADER, bold)
            sheet.freeze_panes(1, 0)
            row_no = 0
        assert sheet is not None
        row_no += 1
        amount = int(row[AMOUNT])
        sheet.write_row(row_no, 0, row[:DEBIT])
        sheet.write_number(row_no, DEBIT, max(amount, 0) / 100, money)
        sheet.write_number(row_no, CREDIT, max(-amount, 0) / 100, money)
        sheet.write_row(row_no, CREDIT + 1, row[CREDIT + 1 :])
        count += 1
    if sheet is None:
        sheet = workbook.add_worksheet("journal")
        sheet.write_row(0, 0, HEADER, bold)
    workbook.close()
    return count
