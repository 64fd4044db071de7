"""The ledger's read side: everything other services may read of the ledger.

The API and the staff pages import this package and nothing else of the ledger.
It reads the ledger database through an engine that never takes SQLite's write
lock, and it never opens the private signing key.

- `open_read_engine(url)`: the read-only engine for the objects below;
- `LedgerQueries`: projects and their totals (`totals_view`), journal size and
  entries, statements, balances as of a time, fund lineage, donations; a gift
  as its receipt shows it, receipt number included (`gift`), and the
  disbursements it paid for (`gift_uses`);
- `Transparency`: signed tree heads (each naming its key), receipts with
  inclusion proofs and the exact text their leaf hashes, consistency proofs
  (`NotYetCovered` while no head covers an entry yet), and the public keys
  that sign heads (`public_keys`, `current_public_key`), as the ledger
  registered them in the database;
- `JournalVerification`: the journal's verification status for pages (`status()`
  gives a `VerificationStatus`: the chain checked up to a seq, the latest signed
  tree head's root and signature checked, its size, time and key id); one per
  process, checking only what is new at each call;
- `next_disclosure_due`, `is_overdue`: a project's disclosure clock (the Charity Law's
  cadence, services/ledger/domain/disclosure.py);
- `ProjectAudit`: a project's closed-loop view (`ClosedLoopView`) at one journal seq,
  now or as of an instant, reconciled from the postings;
- the value types those return: `ProjectTotals`, `ProjectStatus`, `Money`;
- `ChartQueries`: a project's charts summed by the database (money in and out per day,
  gifts per day by channel, the flow to payees), with `cumulative` and `flow` over them
  and `tables`, each chart as text (`ChartTable`, its CSV);
- `ProjectBooks`: a project's statement for a period (`ProjectStatement`) and its
  disclosure report (`DisclosureReport`, its reports and corrections `Published`), from
  the journal entries that touched its accounts;
- `JournalExport`: the journal's lines (a row per posting) of some projects for a `Period`,
  streamed from the database, with `csv_chunks` and `write_xlsx` to write them and
  `parse_period` to read a period typed as dates (export_format.py: columns, sign convention);
- `LEFTOVER_DISPOSITIONS`: what the ledger accepts as a closing project's
  leftover disposition, so forms offer exactly those;
- `DATABASE_AWAY`: what any of them raises while the database cannot be
  reached (the API answers 503 with Retry-After, never 500).
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy import exc as sa_exc

from services.ledger.domain.book import LEFTOVER_DISPOSITIONS
from services.ledger.domain.disclosure import is_overdue, next_disclosure_due
from services.ledger.domain.money import Money
from services.ledger.domain.state import ProjectStatus, ProjectTotals
from services.ledger.read.audit import ClosedLoopView, ProjectAudit
from services.ledger.read.charts import ChartData, ChartQueries, ChartTable, cumulative, flow, tables
from services.ledger.read.export_format import Period, as_text, csv_chunks, parse_period, yuan
from services.ledger.read.journal_export import JournalExport, write_xlsx
from services.ledger.read.queries import LedgerQueries, totals_view
from services.ledger.read.statements import DisclosureReport, ProjectBooks, ProjectStatement, Published
from services.ledger.read.transparency import NotYetCovered, Transparency
from services.ledger.read.verification import JournalVerification, VerificationStatus
from services.platform.db import make_engine

__all__ = [
    "DATABASE_AWAY",
    "LEFTOVER_DISPOSITIONS",
    "ChartData",
    "ChartQueries",
    "ChartTable",
    "ClosedLoopView",
    "DisclosureReport",
    "JournalExport",
    "JournalVerification",
    "LedgerQueries",
    "Money",
    "NotYetCovered",
    "Period",
    "ProjectAudit",
    "ProjectBooks",
    "ProjectStatement",
    "ProjectStatus",
    "ProjectTotals",
    "Published",
    "Transparency",
    "VerificationStatus",
    "as_text",
    "csv_chunks",
    "cumulative",
    "flow",
    "is_overdue",
    "next_disclosure_due",
    "open_read_engine",
    "parse_period",
    "tables",
    "totals_view",
    "write_xlsx",
    "yuan",
]


# Connection refused or lost, the server shutting down, a pool that timed out.
DATABASE_AWAY: tuple[type[Exception], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
)


def open_read_engine(database_url: str) -> Engine:
    """An engine for reading the ledger database; it never takes SQLite's write lock."""
    return make_engine(database_url, writer=False)
