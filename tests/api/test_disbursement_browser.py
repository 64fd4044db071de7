"""Money out with four eyes in headless Chromium: a project manager requests a disbursement above
the threshold with a PDF, a finance officer approves it, a second finance officer approves it (the
ledger holds the funds), it is marked paid with the bank's reference, and the manager attaches the
beneficiary's sign-off.

Everything is real and on loopback: broker, ledger (SQLite) and the API serving over HTTP. Each
person has their own browser context (their own session). Screenshots of every step go to the
test's tmp directory; with CHARITY_DOCS_SCREENSHOTS=1 the ones docs/staff.md shows are also written
to docs/screenshots/staff-disbursement-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.contracts.topics import Topics
from services.ledger.read.queries import LedgerQueries
from services.staff.domain.roles import Role
from services.staff.hashing import hash_password
from tests.api.test_staff_disbursements_ledger import PDF, PNG, THRESHOLD, publish
from tests.fixtures import factories as f
from tests.fixtures.browser import (
    PHONE,
    LoopbackOnly,
    Shots,
    chromium,
    console_on_loopback,
    staff_log_in,
    until_decided,
)
from tests.fixtures.ledger import eventually
from tests.fixtures.staff import PASSWORD

pytestmark = pytest.mark.integration

FOR_DOCS = {
    "01-request-form": "staff-disbursement-request.png",
    "03-first-approval": "staff-disbursement-first-approval.png",
    "04-held": "staff-disbursement-held.png",
    "06-paid-with-evidence": "staff-disbursement-paid.png",
    "07-phone": "staff-disbursement-phone.png",
}


@dataclass
class Running:
    base: str
    queries: LedgerQueries


@pytest.fixture
def running(kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> Iterator[Running]:
    """Ledger and API on loopback: project 'well' open with ¥3,000, its manager and two finance
    officers; two approvals from ¥1,000 up."""
    with console_on_loopback(
        kafka_bootstrap, topics, tmp_path, disbursement_dual_approval_fen=THRESHOLD
    ) as console:
        settings, staff, queries = console.settings, console.staff, console.queries
        for username, role in [
            ("wang.min", Role.PROJECT_MANAGER),
            ("li.fin", Role.FINANCE_OFFICER),
            ("zhao.fin", Role.FINANCE_OFFICER),
        ]:
            staff.add_account(username, role, hash_password(PASSWORD), 1)
        staff.assign("wang.min", project_id="well")
        publish(settings, *f.opened_project("well", name="清泉村打井 A well for Qingquan"))
        publish(settings, f.confirmed("well", 300_000, 0))
        eventually(
            lambda: (p := queries.project("well")) is not None and p.fund_fen == 300_000,
            what="the project open with ¥3,000 available",
        )
        console.serve()
        yield Running(settings.public_base_url, queries)


def submit(page: Any, button: str) -> None:
    """Press a form's button and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(button)


def test_a_manager_requests_two_finance_officers_approve_and_it_is_paid(
    running: Running, tmp_path: Path
) -> None:
    shots = Shots(tmp_path, FOR_DOCS)
    pdf = tmp_path / "报价单-quote.pdf"
    pdf.write_bytes(PDF)
    photo = tmp_path / "签收-signoff.png"
    photo.write_bytes(PNG)
    base = running.base
    with chromium() as browser:
        tabs = [LoopbackOnly(browser) for _ in range(3)]
        manager = staff_log_in(tabs[0].page, base, "wang.min")
        manager.goto(f"{base}/staff/projects/well")
        manager.click("a[href='/staff/projects/well/disbursements']")
        manager.click("a[href='/staff/projects/well/disbursements/new']")
        manager.fill("input[name=payee]", "清泉村村民委员会 Qingquan village committee")
        manager.fill("textarea[name=purpose]", "打一口深水井及配套水泵 Drilling a deep well with its pump")
        manager.fill("input[name=amount_yuan]", "2000.00")
        manager.fill("input[name=planned_on]", "2026-12-28")
        manager.set_input_files("input[name=documents]", str(pdf))
        shots.take(manager, "01-request-form")
        submit(manager, "form[action$='/disbursements'] button")
        text = until_decided(manager)
        assert "The ledger recorded" in text and "needs 2 approvals, 0 given" in text
        address = manager.url.split("?")[0]
        shots.take(manager, "02-requested")

        first = staff_log_in(tabs[1].page, base, "li.fin")
        first.goto(address)
        first.fill(
            "form[action$='/approve'] input[name=comment]", "报价与市价相符 the quote matches the market"
        )
        submit(first, "form[action$='/approve'] button")
        text = until_decided(first)
        assert "approval 1 of 2" in text and "needs 2 approvals, 1 given (li.fin)" in text
        # Having approved, li.fin is not offered a second approval, and is told why.
        assert first.locator("form[action$='/approve']").count() == 0
        assert "you have already approved this disbursement" in text
        shots.take(first, "03-first-approval")

        second = staff_log_in(tabs[2].page, base, "zhao.fin")
        second.goto(address)
        submit(second, "form[action$='/approve'] button")
        text = until_decided(second)
        assert "held" in second.inner_text(".state") and "needs 2 approvals, 2 given" in text
        shots.take(second, "04-held")

        second.fill("input[name=payout_ref]", "ICBC-20261228-0042")
        submit(second, "form[action$='/pay'] button")
        until_decided(second)
        assert second.inner_text(".state") == "paid"
        shots.take(second, "05-paid")

        manager.goto(address)
        manager.fill("input[name=description]", "受益人签收单 the beneficiaries' sign-off")
        manager.set_input_files("input[name=document]", str(photo))
        submit(manager, "form[action$='/evidence'] button")
        text = until_decided(manager)
        assert "受益人签收单" in text and "ICBC-20261228-0042" in text
        shots.take(manager, "06-paid-with-evidence")

        phone = browser.new_context(
            viewport=PHONE, locale="zh-CN", storage_state=tabs[0].context.storage_state()
        )
        small = phone.new_page()
        small.goto(address)
        shots.take(small, "07-phone")
        phone.close()
        for tab in tabs:
            assert tab.blocked == [] and tab.errors == []
            tab.context.close()
    project = running.queries.project("well")
    assert project is not None
    assert (project.fund_fen, project.held_fen, project.disbursed_fen) == (100_000, 0, 200_000)
