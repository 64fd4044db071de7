"""The closed-loop page in headless Chromium on a phone, offline: an auditor opens a project's
page, sees the loop checked, and switches it "as of" a day before the project's disbursement
with the page's own form; nothing wider than the screen, no request beyond loopback, no console
error. Screenshots go to the test's tmp directory; with CHARITY_DOCS_SCREENSHOTS=1 the ones
docs/audit.md shows are also written to docs/screenshots.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.contracts import events as ev
from services.ledger.read import Money
from tests.fixtures import factories as f
from tests.fixtures.browser import PHONE, LoopbackOnly, Shots, auditor_console, chromium, staff_log_in

pytestmark = pytest.mark.integration

CHINA = ZoneInfo("Asia/Shanghai")
SHOWN_IN_DOCS = {"01-closed-loop": "audit-closed-loop-phone.png", "02-as-of": "audit-closed-loop-as-of.png"}


def a_month() -> list[ev.Event]:
    """Gifts on a web page and a QR code, a cash box; a disbursement, with evidence."""
    start = datetime(2026, 10, 1, 2, 0, tzinfo=UTC)
    d = f.disbursement
    events: list[ev.Event] = [
        f.confirmed("meals", 80_000, 480, donation_id="g1"),
        f.confirmed("meals", 120_000, 720, channel="qr", venue_id="hall-1", donation_id="g2"),
        f.offline("meals", 32_050, venue_id="hall-1"),
        d(ev.DisbursementRequested, "meals", "d1", "wang.min", amount_fen=150_000, payee="乐龄助餐点"),
        d(ev.DisbursementApproved, "meals", "d1", "fin-a"),
        d(ev.DisbursementPaid, "meals", "d1", "fin-a"),
        d(ev.EvidenceAttached, "meals", "d1", "wang.min", document_sha256="ab" * 32),
    ]
    return [replace(e, occurred_at=start + timedelta(days=3 * i)) for i, e in enumerate(events)]


def test_an_auditor_on_a_phone_checks_the_loop_and_switches_it_as_of_a_day(tmp_path: Path) -> None:
    console = tmp_path / "console"
    console.mkdir()
    with auditor_console(console, a_month()) as url, chromium() as browser:
        shots, offline = Shots(tmp_path, SHOWN_IN_DOCS), LoopbackOnly(browser)
        offline.page.set_viewport_size(PHONE)
        page: Any = staff_log_in(offline.page, url, "audrey")
        page.goto(f"{url}/staff/audit/projects/meals")
        assert "已核对，精确到分" in page.inner_text("#reconciliation")
        assert page.locator("#timeline tbody tr").count() == 3 + len(a_month())
        shots.take(page, "01-closed-loop")
        # The switch, as a person uses it: today's date typed into the page's own form. Every
        # entry was recorded today, so today's figures are the same and yesterday has none.
        today = datetime.now(CHINA).date()
        page.fill("input[name=as_of]", today.isoformat())
        page.click("form.period button[type=submit]")
        page.wait_for_url(f"**as_of={today.isoformat()}")
        raised = 80_000 - 480 + 120_000 - 720 + 32_050
        line = page.inner_text("#reconciliation p.line >> nth=1")
        assert line.startswith(
            f"{Money(raised, 'CNY').format_yuan()} = {Money(150_000, 'CNY').format_yuan()}"
        )
        shots.take(page, "02-as-of")
        page.fill("input[name=as_of]", (today - timedelta(days=1)).isoformat())
        page.click("form.period button[type=submit]")
        assert "no project 'meals' at that time" in page.content()
        assert all("404" in error for error in offline.errors), offline.errors  # that date's answer
        assert offline.blocked == []
