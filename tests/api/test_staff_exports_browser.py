"""The exports form in headless Chromium on a phone: an auditor picks a project and a period, the
browser downloads the CSV and the XLSX, and both hold that project's journal; the page stays
within the screen, loads nothing from beyond loopback and logs no error.

The API serves on loopback over a ledger (SQLite) the real processor fed; nothing here needs the
broker. Screenshots go to the test's tmp directory; with CHARITY_DOCS_SCREENSHOTS=1 the form is
also written to docs/screenshots for docs/audit.md.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from tests.fixtures import factories as f
from tests.fixtures.browser import PHONE, LoopbackOnly, Shots, auditor_console, chromium, staff_log_in

pytestmark = pytest.mark.integration

SHOWN_IN_DOCS = {"01-exports-phone": "audit-exports-phone.png"}
MARCH = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    seed = [
        replace(f.confirmed("meals", 10_000, 60), occurred_at=MARCH),
        replace(f.offline("meals", 3_000), occurred_at=MARCH),
        f.confirmed("meals", 500, 3),  # today: outside March
    ]
    with auditor_console(tmp_path_factory.mktemp("exports-browser"), seed) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as launched:
        yield launched


def download(page: Any, fmt: str, directory: Path) -> Path:
    """Submits the form for `fmt`; the file saved under the name the server gave it."""
    page.check(f"input[name=format][value={fmt}]")
    with page.expect_download() as started:
        page.click("form button[type=submit]")
    path = directory / started.value.suggested_filename
    started.value.save_as(path)
    return path


def test_an_auditor_downloads_a_projects_march_on_a_phone(api_url: str, browser: Any, tmp_path: Path) -> None:
    shots = Shots(tmp_path, SHOWN_IN_DOCS)
    offline = LoopbackOnly(browser)
    offline.page.set_viewport_size(PHONE)
    page = staff_log_in(offline.page, api_url, "audrey")
    page.click("a[href='/staff/audit/exports']")
    page.select_option("select[name=project]", "meals")
    page.fill("input[name=from]", "2026-03-01")
    page.fill("input[name=to]", "2026-03-31")
    shots.take(page, "01-exports-phone")

    saved_csv = download(page, "csv", tmp_path)
    assert saved_csv.name == "journal-meals-2026-03-01_2026-03-31.csv"
    saved = saved_csv.read_bytes().decode("utf-8")
    assert saved.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(saved.removeprefix("\ufeff"))))
    assert {r["项目 · project_id"] for r in rows} == {"meals"}
    assert {r["业务时间（北京时间） · effective_at"] for r in rows} == {"2026-03-10T10:00:00.000+08:00"}
    debit = sum(int(r["借方（元） · debit"].replace(".", "")) for r in rows)
    assert debit == sum(int(r["贷方（元） · credit"].replace(".", "")) for r in rows) == 10_000 + 3_000

    workbook = openpyxl.load_workbook(download(page, "xlsx", tmp_path), read_only=True)
    _, *cells = workbook.active.iter_rows(values_only=True)
    assert len(cells) == len(rows)
    assert offline.errors == [] and offline.blocked == []
