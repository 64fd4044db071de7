"""An auditor's day in headless Chromium: signs in, opens the federation's overview (overdue
first, the journal verified), sorts it, downloads its CSV, opens a project's closed-loop page
and switches it "as of" an instant between two gifts, downloads the project's journal as CSV
and its disclosure report as PDF; every download's contents checked against the test's own
events, to the fen.

Everything is real and on loopback: broker, ledger (SQLite, signing tree heads) and the API
serving over HTTP. Screenshots go to the test's tmp directory; with CHARITY_DOCS_SCREENSHOTS=1
the ones docs/audit.md shows are also written to docs/screenshots/audit-signoff-*.png.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pypdf import PdfReader

from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.adapters.signing import load_or_create_signing_key
from services.ledger.adapters.tree_heads import TreeHeadSigner
from services.ledger.domain.money import Money
from services.ledger.read.queries import LedgerQueries
from services.platform.db import make_engine
from services.platform.settings import Settings
from services.staff.domain.roles import Role
from services.staff.hashing import hash_password
from tests.api.test_staff_disbursements_ledger import publish
from tests.fixtures import factories as f
from tests.fixtures.browser import PHONE, LoopbackOnly, Shots, chromium, console_on_loopback, staff_log_in
from tests.fixtures.ledger import eventually
from tests.fixtures.outputs import RecordingOutput
from tests.fixtures.staff import PASSWORD

pytestmark = pytest.mark.integration

SHOWN_IN_DOCS = {  # docs/audit.md's walk-through
    "01-overview": "audit-signoff-overview.png",
    "02-overview-phone": "audit-signoff-overview-phone.png",
    "03-closed-loop": "audit-signoff-closed-loop.png",
    "04-closed-loop-as-of": "audit-signoff-as-of.png",
}
D = f.disbursement
MEALS = {"name": "乐龄助餐 Meals for elders", "purpose": "为社区老人提供助餐"}
# A plan that ended in March 2025: its full disclosure was due three months later.
LATE = {"name": "旧衣回收 Clothes recycling", "starts_on": "2025-01-01", "ends_on": "2025-03-31"}
FIRST_GIFT, SECOND_GIFT, CASH, PAID = (50_000, 300), (12_345, 74), 1_200, 20_000
LATE_GIFT = (9_999, 60)
WIDE, TALL = {"width": 1280, "height": 720}, {"width": 1280, "height": 1100}
CHINA = timezone(timedelta(hours=8))


def yuan(fen: int) -> str:
    return Money(fen, "CNY").format_yuan()


@dataclass
class Running:
    url: str
    queries: LedgerQueries
    settings: Settings
    between: datetime  # after the first gift to 'meals' was recorded, before the second


def recorded_at(queries: LedgerQueries, project_id: str) -> list[datetime]:
    return [datetime.fromisoformat(s.record["recorded_at"]) for s in queries.project_entries(project_id)]


@pytest.fixture
def running(kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> Iterator[Running]:
    """'meals' with a year's plan, a gift, cash, a paid disbursement and, later, a second gift;
    'late', whose disclosure is overdue; an auditor."""
    with console_on_loopback(kafka_bootstrap, topics, tmp_path) as console:
        settings, staff, queries = console.settings, console.staff, console.queries
        staff.add_account("shen.audit", Role.AUDITOR, hash_password(PASSWORD), 1)
        publish(settings, *f.opened_project("meals", **MEALS), *f.opened_project("late", **LATE))
        eventually(lambda: queries.project("late") is not None, what="both projects open")
        publish(
            settings,
            f.confirmed("meals", *FIRST_GIFT, donation_id="gift-1"),
            f.offline("meals", CASH),
            f.confirmed("late", *LATE_GIFT),
            D(ev.DisbursementRequested, "meals", "x1", "wang.min", amount_fen=PAID, payee="助餐点"),
            D(ev.DisbursementApproved, "meals", "x1", "li.fin"),
            D(ev.DisbursementPaid, "meals", "x1", "li.fin"),
        )
        eventually(lambda: queries.project("meals").disbursed_fen == PAID, what="the payout booked")  # type: ignore[union-attr]
        last = max(recorded_at(queries, "meals"))
        # The second gift is recorded at least a second later: "as of" the instant between shows
        # everything but it.
        eventually(lambda: datetime.now(UTC) > last + timedelta(seconds=1), what="a second passing")
        publish(settings, f.confirmed("meals", *SECOND_GIFT, donation_id="gift-2"))
        eventually(lambda: queries.project("meals").donations_count == 2, what="the second gift")  # type: ignore[union-attr]
        second = max(recorded_at(queries, "meals"))
        # The test's ledger runs no signing thread: one signed tree head over all of it.
        key = load_or_create_signing_key(Path(settings.signing_key_path), create=False)
        signer = TreeHeadSigner(make_engine(settings.database_url), key, RecordingOutput(), topics)
        assert signer.publish_if_grown() is not None
        console.serve()
        yield Running(settings.public_base_url, queries, settings, last + (second - last) / 2)


def expected() -> dict[str, dict[str, int]]:
    """Each project's raised, spent and available, from the events above."""
    meals_raised = FIRST_GIFT[0] - FIRST_GIFT[1] + SECOND_GIFT[0] - SECOND_GIFT[1] + CASH
    late_raised = LATE_GIFT[0] - LATE_GIFT[1]
    return {
        "meals": {"raised": meals_raised, "spent": PAID, "available": meals_raised - PAID},
        "late": {"raised": late_raised, "spent": 0, "available": late_raised},
    }


def download(page: Any, selector: str, directory: Path) -> bytes:
    """Click a link that downloads; the file's bytes (kept beside the screenshots)."""
    with page.expect_download() as info:
        page.click(selector)
    path: Path = directory / info.value.suggested_filename
    info.value.save_as(path)
    return path.read_bytes()


def overview_rows(page: Any) -> list[tuple[str, bool, list[int]]]:
    rows = []
    for row in page.locator("table.overview tbody tr[data-project]").all():
        figures = [int(cell.get_attribute("data-fen")) for cell in row.locator("td[data-fen]").all()]
        rows.append(
            (row.get_attribute("data-project"), "overdue" in (row.get_attribute("class") or ""), figures)
        )
    return rows


def test_an_auditor_signs_off_from_the_pages_and_files(running: Running, tmp_path: Path) -> None:
    url, want = running.url, expected()
    shots = Shots(tmp_path, SHOWN_IN_DOCS)
    with chromium() as browser:
        tab = LoopbackOnly(browser)
        page = staff_log_in(tab.page, url, "shen.audit")
        page.click("a[href='/staff/audit']")
        page.wait_for_url(f"{url}/staff/audit")

        # The overview: overdue first, in red; each project's figures the events' own.
        def verified() -> bool:
            page.reload()
            return page.get_attribute(".verification", "data-verification") == "verified" and (
                "最新签名树头" in page.inner_text(".verification")
            )

        eventually(verified, what="the journal verified with a signed tree head")
        rows = overview_rows(page)
        assert [(p, overdue) for p, overdue, _ in rows] == [("late", True), ("meals", False)]
        for project, _, figures in rows:
            assert figures == list(want[project].values()), project
        assert page.locator("tr.overdue td.disclosure").evaluate("e => getComputedStyle(e).color") == (
            "rgb(162, 59, 42)"  # --red
        )
        shots.take(page, "01-overview")
        page.set_viewport_size(PHONE)
        shots.take(page, "02-overview-phone")
        page.set_viewport_size(WIDE)
        page.click("th a[data-sort=raised]")
        page.wait_for_url(f"{url}/staff/audit?sort=raised")
        assert [p for p, _, _ in overview_rows(page)] == ["late", "meals"]
        page.click("th a[data-sort=raised]")
        assert [p for p, _, _ in overview_rows(page)] == ["meals", "late"]

        # The overview's CSV: the same rows, in the order shown, with a BOM.
        data = download(page, "a[href^='/staff/audit/overview.csv']", tmp_path)
        assert data.startswith(b"\xef\xbb\xbf")
        header, *body = csv.reader(io.StringIO(data.decode("utf-8-sig")))
        assert [r[0] for r in body] == ["meals", "late"]
        for r in body:
            assert [int(x) for x in r[4:7]] == list(want[r[0]].values())
            assert r[header.index("journal_verified 账本校验")] == "verified"

        # A project's closed-loop page, reconciled to the fen; then as it stood between the gifts.
        page.click("a[href='/staff/audit/projects/meals']")
        page.wait_for_url(f"{url}/staff/audit/projects/meals")
        meals = want["meals"]
        line = page.inner_text("#reconciliation")
        assert yuan(meals["raised"]) in line and yuan(meals["available"]) in line
        assert page.locator("#reconciliation .reconciled").is_visible()
        head = running.queries.journal_size()
        assert f"#{head}" in page.inner_text(".cut")
        page.set_viewport_size(TALL)
        shots.take(page, "03-closed-loop", full_page=False)  # the top: the cut and the line
        page.set_viewport_size(WIDE)
        shots.take(page, "03-closed-loop-whole")
        page.fill("input[name=as_of]", running.between.astimezone(CHINA).isoformat(timespec="milliseconds"))
        page.click("form.period button")
        page.wait_for_url(lambda address: "as_of=" in address)
        before = meals["raised"] - (SECOND_GIFT[0] - SECOND_GIFT[1])
        line = page.inner_text("#reconciliation")
        assert yuan(before) in line and yuan(before - PAID) in line and yuan(meals["raised"]) not in line
        assert page.locator("#reconciliation .reconciled").is_visible()
        assert f"#{head - 1}" in page.inner_text(".cut")  # the second gift was the last entry
        page.set_viewport_size(TALL)
        shots.take(page, "04-closed-loop-as-of", full_page=False)
        page.set_viewport_size(WIDE)

        # The project's journal for the accountant, through the exports form: every entry of
        # the project with its hashes, and the fund's postings summing to what is available.
        page.goto(f"{url}/staff/audit")
        page.click("a[href='/staff/audit/exports']")
        page.select_option("select[name=project]", "meals")
        page.check("input[name=format][value=csv]")
        journal = download(page, "form[action='/staff/audit/exports'] button[type=submit]", tmp_path)
        assert journal.startswith(b"\xef\xbb\xbf")
        lines = list(csv.DictReader(io.StringIO(journal.decode("utf-8-sig"))))
        column = {key.split(" · ")[-1]: key for key in lines[0]}
        stored = {e.seq: e.entry_hash for e in running.queries.project_entries("meals")}
        assert {int(line[column["seq"]]): line[column["entry_hash"]] for line in lines} == stored
        fund = sum(
            int(line[column["amount_fen"]])
            for line in lines
            if line[column["account"]] == "project:meals:fund"
        )
        assert fund == want["meals"]["available"]

        # The disclosure report, from the closed-loop page: the page, then its PDF.
        page.goto(f"{url}/staff/audit/projects/meals")
        page.click("a[href='/staff/audit/projects/meals/disclosure']")
        shots.take(page, "05-disclosure")
        pdf = download(page, "a[href$='disclosure.pdf']", tmp_path)
        assert pdf.startswith(b"%PDF-")
        text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)
        assert "为社区老人提供助餐" in re.sub(r"\s+", "", text) and "乐龄助餐" in text
        for fen in (meals["raised"], PAID, meals["available"]):  # the test's own sums
            assert yuan(fen) in text, yuan(fen)

        assert tab.blocked == [] and tab.errors == []
