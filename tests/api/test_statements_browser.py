"""Statements in headless Chromium: an auditor reads a project's statement for March, opens the
disclosure report (on screen and as printed: the print stylesheet hides the site's header and
the buttons) and downloads its PDF; a donor on a phone makes a year-end statement from their
receipts. The API is served on loopback (on_loopback) over a seeded SQLite ledger (no broker: nothing here
publishes); the browser may reach loopback only.

Screenshots go to the test's tmp directory; with CHARITY_DOCS_SCREENSHOTS=1 the ones
docs/audit.md and docs/donors.md show are also written to docs/screenshots.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pypdf import PdfReader

from services.contracts import events as ev
from services.staff.domain.roles import Role
from tests.api.test_donor_statements import IN_2026, donor_seed
from tests.api.test_staff_statements import END, YEAR, change_of, yuan
from tests.fixtures.browser import PHONE, LoopbackOnly, Shots, chromium, on_loopback, staff_log_in
from tests.fixtures.staff import staff_app

pytestmark = pytest.mark.integration  # Chromium, as the other browser tests

FOR_DOCS = {
    "statement": "audit-statement.png",
    "disclosure": "audit-disclosure.png",
    "disclosure-print": "audit-disclosure-print.png",
    "donor-statement": "donor-year-statement.png",
}


@dataclass
class Served:
    base: str
    held: list[tuple[str, str]]
    meals: list[ev.Event]  # every event of the project 'meals', as the test sent them


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    seed, held = donor_seed(url)
    with staff_app(tmp_path, url, seed=[*YEAR, *seed]) as app:
        app.add("aud", Role.AUDITOR)
        with on_loopback(app.client.app) as base:
            yield Served(base, held, [e for e in [*YEAR, *seed] if e.project_id == "meals"])


def test_an_auditor_reads_the_statement_and_the_disclosure_report_a_donor_their_year(
    served: Served, tmp_path: Path
) -> None:
    shots = Shots(tmp_path, FOR_DOCS)
    base = served.base
    with chromium() as browser:
        auditor = LoopbackOnly(browser)
        page = staff_log_in(auditor.page, base, "aud")
        page.goto(f"{base}/staff/audit/projects/meals/statement?from=2026-03-01&to=2026-03-31")
        assert page.locator("[data-reconciles=yes]").is_visible()
        closing = sum(change_of(e)[1] for e in served.meals if e.occurred_at < END)
        assert page.inner_text("[data-figure=closing]") == yuan(closing)
        shots.take(page, "statement")

        page.goto(f"{base}/staff/audit/projects/meals/disclosure")
        assert page.locator("header.site").is_visible()
        shots.take(page, "disclosure")
        page.emulate_media(media="print")
        assert not page.locator("header.site").is_visible()
        assert not page.locator("a[download]").is_visible()
        assert page.locator("[data-figure=balance]").is_visible()
        shots.take(page, "disclosure-print")
        page.emulate_media(media="screen")
        with page.expect_download() as download:
            page.click("a[download]")
        saved = tmp_path / "disclosure.pdf"
        download.value.save_as(saved)
        text = "".join(p.extract_text() for p in PdfReader(saved).pages)
        # As of now: a gift effective on New Year's Day 2027 (China time) is not in it yet.
        balance = sum(change_of(e)[1] for e in served.meals if e.occurred_at < datetime.now(UTC))
        assert "为社区老人提供助餐" in text and yuan(balance) in text

        donor = LoopbackOnly(browser)
        donor.page.set_viewport_size(PHONE)
        donor.page.goto(f"{base}/receipts")
        donor.page.click("a[href='/statements']")
        donor.page.fill("textarea[name=receipts]", "\n".join(f"{no} {code}" for no, code in served.held))
        donor.page.click("button[type=submit]")
        donor.page.wait_for_selector("[data-total=net]")
        net = sum(g.gross_fen - g.refunded_fen for g in IN_2026)
        assert donor.page.inner_text("[data-total=net]") == yuan(net)
        shots.take(donor.page, "donor-statement")
        for tab in (auditor, donor):
            assert tab.blocked == [] and tab.errors == [], (tab.blocked, tab.errors)
