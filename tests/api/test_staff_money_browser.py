"""Money that does not come online, in headless Chromium on a phone: a venue operator records a
charity sale at the till, a finance officer refunds part of an online gift through the WeChat Pay
sandbox, and two finance officers redirect takings out of a closed project's suspense.

Broker, ledger (SQLite), the sandbox and the API are real and on loopback; the browser may reach
loopback only. Screenshots go to the test's tmp directory; with CHARITY_DOCS_SCREENSHOTS=1 the
ones docs/staff.md shows are also written to docs/screenshots/staff-money-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.contracts.topics import Topics
from services.platform.db import make_engine
from services.staff.adapters.store import StaffStore
from services.staff.domain.roles import Role
from services.staff.hashing import hash_password
from tests.api.test_end_to_end import project_body
from tests.api.test_giving import STAFF, open_project
from tests.api.test_staff_refund_pages import paid_gift
from tests.fixtures import factories as f
from tests.fixtures.browser import PHONE, LoopbackOnly, Shots, chromium, staff_log_in, until_decided
from tests.fixtures.giving import GivingSystem
from tests.fixtures.ledger import eventually
from tests.fixtures.staff import PASSWORD
from tests.ledger.test_ledger_integration import produce

pytestmark = pytest.mark.integration

FOR_DOCS = {
    "till-sale-recorded": "staff-money-till.png",
    "refund-partial": "staff-money-refund.png",
    "suspense-request": "staff-money-suspense-request.png",
    "suspense-applied": "staff-money-suspense-applied.png",
}


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    # Overrides the shared fixture: what the pages show is the same on either database.
    return f"sqlite:///{tmp_path / 'ledger.db'}"


class Phone:
    """A person's phone: its own browser context (cookies), loopback only, 390 px wide."""

    def __init__(self, browser: Any, base: str, shots: Path) -> None:
        self.tab = LoopbackOnly(browser)
        self.tab.page.set_viewport_size(PHONE)
        self.page = self.tab.page
        self.base = base
        self.shots = Shots(shots, FOR_DOCS)

    def log_in(self, username: str) -> None:
        staff_log_in(self.page, self.base, username)

    def decided(self) -> str:
        """The page after a form, once the ledger has decided (reloaded until it has)."""
        return until_decided(self.page)

    def shot(self, name: str) -> None:
        self.shots.take(self.page, name)


@pytest.fixture
def phones(giving: GivingSystem, tmp_path: Path) -> Iterator[Any]:
    opened: list[Phone] = []
    with chromium() as browser:

        def phone(username: str) -> Phone:
            opened.append(Phone(browser, giving.settings.public_base_url, tmp_path))
            opened[-1].log_in(username)
            return opened[-1]

        yield phone
    for each in opened:
        assert each.tab.blocked == [], "a page asked for something beyond loopback"
        assert each.tab.errors == []


def test_the_till_a_refund_and_a_redirection_on_phones(giving: GivingSystem, phones: Any) -> None:
    settings = giving.settings
    staff = StaffStore(make_engine(settings.database_url))
    staff.add_account("op", Role.VENUE_OPERATOR, hash_password(PASSWORD), 1, venues=frozenset({"garden"}))
    for name in ("fin-a", "fin-b"):
        staff.add_account(name, Role.FINANCE_OFFICER, hash_password(PASSWORD), 1)
    staff.engine.dispose()
    open_project(giving.api, "meals")
    # 'later' is registered, not fundraising: the cash box counted for it waits in suspense.
    assert giving.api.post("/api/projects", json=project_body("later"), headers=STAFF).status_code == 202
    eventually(lambda: giving.api.get("/api/projects/later/totals").status_code == 200, what="later")
    produce(settings.kafka_bootstrap, Topics(settings.topic_prefix), [f.offline("later", amount_fen=8000)])
    later = "/api/projects/later/totals"
    eventually(lambda: giving.api.get(later).json()["suspense_fen"] == 8000, what="takings in suspense")

    op = phones("op")
    op.page.click("text=收银台")
    op.page.select_option("select[name=project_id]", "meals")
    op.page.check("input[value=charity_sale]")
    op.page.fill("input[name=item]", "绿植 a plant")
    op.page.fill("input[name=amount_yuan]", "15.50")
    op.page.click("form.till button[type=submit]")
    recorded = op.decided()
    assert "OfflineDonationRecorded (posted)" in recorded and "¥15.50 · 绿植 a plant" in recorded
    op.shot("till-sale-recorded")

    gift = paid_gift(giving)
    fin_a = phones("fin-a")
    fin_a.page.click("text=退款")
    fin_a.page.fill("input[name=q]", gift.receipt_no)
    fin_a.page.click("form[method=get] button")
    fin_a.page.fill("form[method=post] input[name=amount_yuan]", "10")
    fin_a.page.fill("form[method=post] input[name=reason]", "捐错金额 wrong amount")
    fin_a.page.click("form[method=post] button")
    shown = fin_a.decided()
    assert "DonationRefunded (posted)" in shown and "¥40.00" in shown
    fin_a.shot("refund-partial")

    fin_a.page.goto(f"{settings.public_base_url}/staff/suspense")
    fin_a.page.fill("input[name=amount_yuan]", "80")
    fin_a.page.fill("form[action$='/requests'] input[name=reason]", "清点晚于结束 counted after closing")
    fin_a.page.click("form[action$='/requests'] button")
    assert "SuspenseResolutionRequested (recorded)" in fin_a.decided()
    assert "批准" not in fin_a.page.inner_text("table.pending")  # no approve button for the requester
    fin_a.shot("suspense-request")

    fin_b = phones("fin-b")
    fin_b.page.click("text=暂挂资金")
    fin_b.page.click("form[action$='/approve'] button")
    assert "SuspenseResolutionApproved (posted)" in fin_b.decided()
    assert "applied" in fin_b.page.inner_text("table.done")
    fin_b.shot("suspense-applied")
    meals = giving.api.get("/api/projects/meals/totals").json()
    assert meals["offline_sales_fen"] == 1550 and meals["redirected_in_fen"] == 8000
