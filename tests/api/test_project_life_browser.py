"""A project's later life in headless Chromium: a manager registers a plan with its area and
filing number, reports progress and corrects the report; an administrator suspends and resumes
the project, is refused closing it with money left and no disposition (the ledger's reason on
the page), and closes it transferring the leftover to another project that is fundraising.

Everything is real and on loopback: broker, ledger (SQLite) and the API serving over HTTP; each
person has their own browser context. Screenshots of every step go to the test's tmp directory;
with CHARITY_DOCS_SCREENSHOTS=1 the ones docs/staff.md shows are also written to
docs/screenshots/staff-project-*.png.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from services.contracts.topics import Topics
from services.ledger.read.queries import LedgerQueries
from services.platform.settings import Settings
from services.staff.domain.roles import Role
from services.staff.hashing import hash_password
from tests.api.test_staff_disbursements_ledger import publish
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

SHOWN_IN_DOCS = {
    "02-progress-reported": "staff-project-progress.png",
    "04-public-page": "staff-project-public-page.png",
    "06-close-refused": "staff-project-close-refused.png",
    "07-closed-phone": "staff-project-closed-phone.png",
}


@dataclass
class Running:
    url: str
    queries: LedgerQueries
    settings: Settings


@pytest.fixture
def running(kafka_bootstrap: str, topics: Topics, tmp_path: Path) -> Iterator[Running]:
    """Ledger and API on loopback; 'meals' is fundraising; an administrator and a manager."""
    with console_on_loopback(kafka_bootstrap, topics, tmp_path) as console:
        settings, staff, queries = console.settings, console.staff, console.queries
        staff.add_account("ada", Role.ADMINISTRATOR, hash_password(PASSWORD), 1)
        staff.add_account("wang.min", Role.PROJECT_MANAGER, hash_password(PASSWORD), 1)
        publish(settings, *f.opened_project("meals", name="乐龄助餐 Meals for elders"))
        eventually(lambda: queries.project("meals") is not None, what="meals open")
        console.serve()
        yield Running(settings.public_base_url, queries, settings)


def take(page: Any, step: str, **fields: str) -> str:
    """Open a step's form, fill it, send it, and wait for the ledger's decision; the page's text."""
    form = f"form[action$='/{step}']"
    if page.locator(f"details:has({form})").count():
        page.click(f"details:has({form}) > summary")
    for name, value in fields.items():
        if page.locator(f"{form} select[name={name}]").count():
            page.select_option(f"{form} select[name={name}]", value)
        else:
            page.fill(f"{form} [name={name}]", value)
    before = page.url
    page.click(f"{form} button")
    # The step's own redirect (a new event id), before any reload.
    page.wait_for_url(lambda url: "?sent=" in url and url != before)
    return until_decided(page, what=f"the ledger's decision on {step}")


def test_a_project_is_reported_on_corrected_suspended_resumed_and_closed(
    running: Running, tmp_path: Path
) -> None:
    url, queries = running.url, running.queries
    shots = Shots(tmp_path, SHOWN_IN_DOCS)
    with chromium() as browser:
        tabs = [LoopbackOnly(browser) for _ in range(2)]
        manager = staff_log_in(tabs[0].page, url, "wang.min")
        manager.goto(f"{url}/staff/projects/new")
        plan = {
            "project_id": "orchard",
            "name": "社区果园 A community orchard",
            "organisation": "苏州工业园区慈善总会",
            "certificate_no": "CSZ-2026-0001",
            "filing_no": "53320500MJ0000000X-2026-017",
            "area": "苏州工业园区 Suzhou Industrial Park",
            "purpose": "在社区空地种果树 Fruit trees on the estate's empty plot",
            "goal_yuan": "20000",
            "starts_on": "2026-12-01",
            "ends_on": "2027-05-31",
            "beneficiaries": "社区居民 The estate's residents",
            "use_of_funds": "树苗、工具 Saplings and tools",
            "leftover_handling": "转入同类项目 To a similar project",
        }
        for name, value in plan.items():
            manager.fill(f"[name={name}]", value)
        manager.click("form[action='/staff/projects'] button")
        eventually(lambda: queries.project("orchard") is not None, what="orchard registered")
        admin = staff_log_in(tabs[1].page, url, "ada")
        admin.goto(f"{url}/staff/projects/orchard")
        assert "The ledger recorded" in take(admin, "approve")
        manager.goto(f"{url}/staff/projects/orchard")
        assert "The ledger recorded" in take(manager, "open-fundraising")
        # Playwright's loop runs on this thread: the gift is published from another.
        with ThreadPoolExecutor(1) as pool:
            pool.submit(publish, running.settings, f.confirmed("orchard", 50_000, 0)).result()
        eventually(lambda: queries.project("orchard").fund_fen == 50_000, what="a ¥500 gift booked")  # type: ignore[union-attr]

        text = take(manager, "report-progress", summary="已种下 40 棵果树 40 fruit trees planted")
        assert "The ledger recorded: ProgressReported" in " ".join(text.split())
        shots.take(manager, "02-progress-reported")
        [report] = queries.project_entries("orchard", ["ProgressReported"])
        text = take(
            manager,
            "publish-correction",
            corrects_event_id=report.record["entry_id"],
            note="应为 45 棵 It was 45 trees",
        )
        assert "CorrectionPublished" in text
        shots.take(manager, "03-corrected")
        manager.goto(f"{url}/projects/orchard")
        public = manager.inner_text("main")
        for shown in ["40 fruit trees planted", "It was 45 trees", "Suzhou Industrial Park", "2026-017"]:
            assert shown in public
        shots.take(manager, "04-public-page")

        admin.reload()
        assert "ProjectSuspended" in take(admin, "suspend", reason="账目复核 Accounts under review")
        assert admin.inner_text(".status") == "suspended"
        shots.take(admin, "05-suspended")
        assert "ProjectResumed" in take(admin, "resume", reason="复核完毕 Review done")
        assert admin.inner_text(".status") == "fundraising"

        manager.goto(f"{url}/staff/projects/orchard")
        take(manager, "close-fundraising", reason="季末 End of season")
        admin.reload()
        text = take(admin, "close", leftover_disposition="none")
        assert "The ledger refused this step" in " ".join(text.split())
        assert admin.inner_text(".reason") == "50000 fen is left over: a disposition is required"
        shots.take(admin, "06-close-refused")
        text = take(
            admin, "close", leftover_disposition="transfer_to_project", leftover_target_project_id="meals"
        )
        assert admin.inner_text(".status") == "closed"
        admin.set_viewport_size(PHONE)
        shots.take(admin, "07-closed-phone")
        for tab in tabs:
            assert tab.blocked == [] and tab.errors == []
    closed = queries.project("orchard")
    assert closed is not None and (closed.fund_fen, closed.leftover_fen) == (0, 50_000)
