"""The journal export over a journal the real processor wrote, on SQLite and PostgreSQL: the CSV
and the XLSX re-read sum to the journal, entry by entry and account by account."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections import Counter, defaultdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.adapters import tables as t
from services.ledger.adapters.store import LedgerStore
from services.ledger.read import JournalExport, LedgerQueries, csv_chunks, parse_period, write_xlsx
from services.ledger.read.export_format import BOM, HEADER, Period
from services.ledger.service.processor import BatchProcessor
from tests.fixtures import factories as f
from tests.fixtures.outputs import RecordingOutput
from tests.ledger.ops.test_verify_and_rebuild import feed

pytestmark = pytest.mark.integration  # the store runs on the PostgreSQL server too

D = f.disbursement
KEYS = [heading.rsplit(" · ", 1)[1] for heading in HEADER]


def at(moment: str, event: ev.Event) -> ev.Event:
    return dataclasses.replace(event, occurred_at=datetime.fromisoformat(moment))


@pytest.fixture
def journal(store: LedgerStore) -> JournalExport:
    """Two projects' year: gifts with fees (one on each side of midnight, China time, at the end of
    March), a second confirmation (rejected), a cash box, a charity sale, a refund, a disbursement
    requested, approved (held) and paid, and one released."""
    events: list[ev.Event] = [
        *f.opened_project("p1"),
        *f.opened_project("p2"),
        at("2026-03-31T15:59:59.999+00:00", f.confirmed("p1", 10_000, 60, donation_id="march")),
        at("2026-03-31T16:00:00+00:00", f.confirmed("p1", 2_501, 15, donation_id="april")),
        f.confirmed("p1", 10_000, 60, donation_id="march"),
        f.confirmed("p2", 777, 7, donation_id="other"),
        f.offline("p1", 3_000),
        f.offline("p1", 1_250, kind="charity_sale"),
        f.refunded("p1", "april", 501),
        D(ev.DisbursementRequested, "p1", "x1", "alice", amount_fen=4_000),
        D(ev.DisbursementApproved, "p1", "x1", "bob"),
        D(ev.DisbursementPaid, "p1", "x1", "treasurer"),
        D(ev.DisbursementRequested, "p1", "x2", "alice", amount_fen=1_000),
        D(ev.DisbursementApproved, "p1", "x2", "bob"),
        D(ev.DisbursementRejected, "p1", "x2", "carol"),
    ]
    feed(BatchProcessor(store, RecordingOutput(), Topics(""), "g"), events)
    return JournalExport(store.engine)


def reimport(chunks: list[bytes]) -> list[dict[str, str]]:
    text = b"".join(chunks).decode("utf-8")
    assert text.startswith(BOM)
    reader = csv.reader(io.StringIO(text.removeprefix(BOM)))
    assert next(reader) == list(HEADER)
    return [dict(zip(KEYS, row, strict=True)) for row in reader]


def fen(yuan_text: str | float | Decimal) -> int:
    """Yuan as the export wrote them (text, or a number cell) → integer fen, exactly."""
    exact = Decimal(str(yuan_text)) * 100
    assert exact == exact.to_integral_value(), yuan_text
    return int(exact)


def postings_by_account(journal: JournalExport, projects: list[str] | None = None) -> dict[str, int]:
    query = select(t.postings.c.account, func.sum(t.postings.c.amount)).group_by(t.postings.c.account)
    if projects is not None:
        query = query.join(t.journal, t.journal.c.seq == t.postings.c.seq).where(
            t.journal.c.project_id.in_(projects)
        )
    with journal.engine.connect() as conn:
        return {account: int(total) for account, total in conn.execute(query)}


def expected_rows(journal: JournalExport) -> int:
    """A row per posting, and one per entry without postings."""
    with journal.engine.connect() as conn:
        postings = conn.scalar(select(func.count()).select_from(t.postings))
        bare = conn.scalar(
            select(func.count())
            .select_from(t.journal)
            .where(~select(t.postings.c.seq).where(t.postings.c.seq == t.journal.c.seq).exists())
        )
    return int(postings or 0) + int(bare or 0)


def balances(rows: list[dict[str, str]], debit: str = "debit", credit: str = "credit") -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for row in rows:
        if row["account"]:
            totals[row["account"]] += fen(row[debit]) - fen(row[credit])
    return dict(totals)


def test_the_csv_re_imported_sums_to_the_journal(journal: JournalExport) -> None:
    rows = reimport(list(csv_chunks(journal.lines())))
    assert len(rows) == expected_rows(journal)
    assert [int(r["seq"]) for r in rows] == sorted(int(r["seq"]) for r in rows)
    by_entry: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        by_entry[row["entry_id"]][0] += fen(row["debit"])
        by_entry[row["entry_id"]][1] += fen(row["credit"])
        assert fen(row["debit"]) - fen(row["credit"]) == int(row["amount_fen"])
        assert min(fen(row["debit"]), fen(row["credit"])) == 0
    assert all(debits == credits for debits, credits in by_entry.values())
    assert balances(rows) == postings_by_account(journal)
    p1 = LedgerQueries(journal.engine).project("p1")
    assert p1 is not None
    assert balances(rows)["project:p1:fund"] == p1.fund_fen
    assert balances(rows).get("project:p1:held", 0) == p1.held_fen
    # Every entry is there once, with its hashes; the rejected one with zero amounts and its reason.
    with journal.engine.connect() as conn:
        hashes = dict(conn.execute(select(t.journal.c.entry_id, t.journal.c.entry_hash)).all())
    assert {r["entry_id"]: r["entry_hash"] for r in rows} == hashes
    # Who did each step, and where each gift came in, as the hashed entries say.
    by_kind = {(r["kind"], r["actor"], r["channel"]) for r in rows if r["project_id"] == "p1"}
    assert {
        ("DisbursementRequested", "alice", ""),
        ("DisbursementApproved", "bob", ""),
        ("DisbursementPaid", "treasurer", ""),
        ("DonationConfirmed", "sandbox", "web"),
        ("OfflineDonationRecorded", "staff-1", "cash_box:botanic-garden"),
        ("OfflineDonationRecorded", "staff-1", "charity_sale:botanic-garden"),
    } <= by_kind
    rejected = [r for r in rows if r["decision"] == "rejected"]
    assert len(rejected) == 1 and "already confirmed" in rejected[0]["reason"]
    assert (rejected[0]["debit"], rejected[0]["credit"], rejected[0]["account"]) == ("0.00", "0.00", "")


def test_the_xlsx_re_opened_sums_the_same(journal: JournalExport, tmp_path: Path) -> None:
    path = tmp_path / "journal.xlsx"
    written = write_xlsx(journal.lines(), path)
    book = openpyxl.load_workbook(path, read_only=True)
    (sheet,) = book.worksheets
    header, *cells = list(sheet.iter_rows(values_only=True))
    assert list(header) == list(HEADER)
    rows = [dict(zip(KEYS, ("" if v is None else v for v in row), strict=True)) for row in cells]
    assert len(rows) == written == expected_rows(journal)
    assert all(isinstance(r["debit"], float | int) for r in rows)  # numbers a spreadsheet can sum
    assert balances(rows) == postings_by_account(journal)
    csv_rows = reimport(list(csv_chunks(journal.lines())))
    assert [(str(r["seq"]), str(r["amount_fen"])) for r in rows] == [
        (r["seq"], r["amount_fen"]) for r in csv_rows
    ]


def test_a_workbook_longer_than_a_sheet_goes_on_over_the_next(journal: JournalExport, tmp_path: Path) -> None:
    path = tmp_path / "journal.xlsx"
    written = write_xlsx(journal.lines(), path, sheet_rows=10)
    book = openpyxl.load_workbook(path, read_only=True)
    assert book.sheetnames == ["journal", *(f"journal {n}" for n in range(2, len(book.sheetnames) + 1))]
    assert len(book.sheetnames) == -(-written // 10)
    data = [row for sheet in book.worksheets for row in list(sheet.iter_rows(values_only=True))[1:]]
    assert len(data) == written


def test_an_empty_export_is_its_header(journal: JournalExport, tmp_path: Path) -> None:
    assert reimport(list(csv_chunks(journal.lines(projects=set())))) == []
    path = tmp_path / "empty.xlsx"
    assert write_xlsx(journal.lines(projects=["nobody's"]), path) == 0
    assert [list(r) for r in openpyxl.load_workbook(path).active.iter_rows(values_only=True)] == [
        list(HEADER)
    ]


def test_a_project_and_a_period_select_their_entries(journal: JournalExport) -> None:
    p2 = reimport(list(csv_chunks(journal.lines(projects={"p2"}))))
    assert {r["project_id"] for r in p2} == {"p2"}
    assert balances(p2) == postings_by_account(journal, ["p2"])
    march, _ = parse_period("2026-03-01", "2026-03-31")
    assert march is not None
    in_march = reimport(list(csv_chunks(journal.lines(projects={"p1"}, period=march))))
    # The gift at 23:59:59.999 China time on 31 March is in; the one a millisecond later is April's.
    assert {r["effective_at"] for r in in_march} == {"2026-03-31T23:59:59.999+08:00"}
    assert Counter(r["kind"] for r in in_march) == {"DonationConfirmed": 4}
    april_on = reimport(list(csv_chunks(journal.lines(period=Period(first=march.last)))))
    assert "2026-04-01T00:00:00.000+08:00" in {r["effective_at"] for r in april_on}
    until_march = reimport(list(csv_chunks(journal.lines(period=Period(last=march.last)))))
    assert len(until_march) + len(april_on) - len(in_march) == expected_rows(journal)


def test_a_projects_export_holds_the_money_redirected_into_it(store: LedgerStore) -> None:
    """A redirection out of another project's suspense is journaled under that project, but
    moves money into this one's fund: this project's export holds the entry too, so summing
    its rows by account gives its balances (docs/audit.md), as the all-projects export does."""
    redirect = {"resolution_id": "sr-1", "currency": "CNY", "reason": "捐赠人同意转入"}
    events: list[ev.Event] = [
        *f.opened_project("meals"),
        f.registered("books"),  # not fundraising: its gift goes to its suspense
        f.confirmed("meals", 10_000, 60, donation_id="meals-1"),
        f.confirmed("books", 2_000, 0, donation_id="books-1"),
        f.lifecycle(
            ev.SuspenseResolutionRequested,
            "books",
            "fin-1",
            action="redirect",
            amount_fen=1_500,
            target_project_id="meals",
            **redirect,
        ),
        f.lifecycle(ev.SuspenseResolutionApproved, "books", "fin-2", resolution_id="sr-1"),
    ]
    feed(BatchProcessor(store, RecordingOutput(), Topics(""), "g"), events)
    journal = JournalExport(store.engine)
    everything = balances(reimport(list(csv_chunks(journal.lines()))))
    assert everything["project:meals:fund"] == 9_940 + 1_500  # the redirection did happen
    meals = reimport(list(csv_chunks(journal.lines(projects={"meals"}))))
    assert balances(meals)["project:meals:fund"] == everything["project:meals:fund"]
    assert {r["project_id"] for r in meals} == {"meals", "books"}  # the redirection is books'
    assert {r["kind"] for r in meals if r["project_id"] == "books"} == {"SuspenseResolutionApproved"}
    books = reimport(list(csv_chunks(journal.lines(projects={"books"}))))
    assert balances(books)["suspense:books"] == 2_000 - 1_500
    assert {r["project_id"] for r in books} == {"books"}
