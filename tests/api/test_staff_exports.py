"""The journal exports through the console: CSV and XLSX downloads, their period, who gets which
projects, and the exports form."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import openpyxl
import pytest
from fastapi.testclient import TestClient

from services.contracts import events as ev
from services.staff.domain.roles import Role
from tests.api.test_staff_disbursement_pages import browser
from tests.fixtures import factories as f
from tests.fixtures.staff import StaffApp, csrf_of, staff_app

BOM = "\ufeff"
SEED = [
    f.confirmed("meals", 10_000, 60),
    f.confirmed("meals", 2_550, 15),
    f.offline("meals", 3_000),
    f.disbursement(ev.DisbursementRequested, "meals", "d-1", "someone", amount_fen=4_000),
]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaffApp]:
    with staff_app(tmp_path_factory.mktemp("exports"), seed=SEED) as made:
        made.add("auditor", Role.AUDITOR)
        made.add("manager", Role.PROJECT_MANAGER, projects=frozenset({"meals"}))
        made.add("finance", Role.FINANCE_OFFICER)
        yield made


def csv_rows(body: bytes) -> list[dict[str, str]]:
    text = body.decode("utf-8")
    assert text.startswith(BOM)
    reader = csv.DictReader(io.StringIO(text.removeprefix(BOM)))
    return [{k.rsplit(" · ", 1)[1]: v for k, v in row.items()} for row in reader]


def file_name(disposition: str) -> str:
    """The exact file name (filename*), checked against its ASCII fallback."""
    assert disposition.startswith("attachment; filename=")
    fallback = disposition.split('filename="', 1)[1].split('"', 1)[0]
    exact = unquote(disposition.split("filename*=UTF-8''", 1)[1])
    assert fallback.isascii() and len(fallback) == len(exact)
    return exact


def test_an_auditor_downloads_a_projects_journal_as_csv(app: StaffApp) -> None:
    answer = browser(app, "auditor").get("/staff/audit/projects/meals/journal.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/csv; charset=utf-8"
    assert file_name(answer.headers["content-disposition"]) == "journal-meals-all.csv"
    rows = csv_rows(answer.content)
    assert {r["project_id"] for r in rows} == {"meals"}
    gifts = [r for r in rows if r["kind"] == "DonationConfirmed"]
    assert sum(int(r["amount_fen"]) for r in gifts if r["account"] == "project:meals:fund") == 9_940 + 2_535
    assert sum(int(r["amount_fen"]) for r in rows) == 0  # every entry balances
    queries = app.client.app.state.queries  # type: ignore[attr-defined]
    assert len({r["seq"] for r in rows}) == len(queries.project_entries("meals"))


def temporary_workbooks() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("journal-*.xlsx"))


def test_an_xlsx_download_for_a_period(app: StaffApp, tmp_path: Path) -> None:
    before = temporary_workbooks()
    answer = browser(app, "auditor").get("/staff/audit/journal.xlsx?from=2026-01-01&to=2099-12-31")
    assert temporary_workbooks() - before == set()  # the server's temporary file is gone once sent
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/vnd.openxmlformats")
    assert (
        file_name(answer.headers["content-disposition"]) == "journal-all-projects-2026-01-01_2099-12-31.xlsx"
    )
    (tmp_path / "j.xlsx").write_bytes(answer.content)
    header, *rows = openpyxl.load_workbook(tmp_path / "j.xlsx", read_only=True).active.iter_rows(
        values_only=True
    )
    projects = {row[header.index("项目 · project_id")] for row in rows}
    assert projects == {"meals", "books"}
    # Nothing of the ledger lies before 2026 (the fixture's entries are from now on).
    empty = browser(app, "auditor").get("/staff/audit/journal.csv?to=2025-12-31")
    assert empty.status_code == 200 and csv_rows(empty.content) == []


def test_a_project_manager_exports_their_own_projects_only(app: StaffApp) -> None:
    manager = browser(app, "manager")
    answer = manager.get("/staff/audit/journal.csv")
    assert answer.status_code == 200
    assert file_name(answer.headers["content-disposition"]) == "journal-own-projects-all.csv"
    assert {r["project_id"] for r in csv_rows(answer.content)} == {"meals"}
    assert manager.get("/staff/audit/projects/meals/journal.xlsx").status_code == 200
    for suffix in ("csv", "xlsx"):
        assert manager.get(f"/staff/audit/projects/books/journal.{suffix}").status_code == 403


def test_people_without_the_audit_right_and_nobody_are_refused(app: StaffApp) -> None:
    assert browser(app, "finance").get("/staff/audit/journal.csv").status_code == 403
    nobody = TestClient(app.client.app).get("/staff/audit/journal.csv", follow_redirects=False)
    assert nobody.status_code == 303 and nobody.headers["location"] == "/staff/login"


def test_an_unknown_project_is_404(app: StaffApp) -> None:
    assert browser(app, "auditor").get("/staff/audit/projects/nowhere/journal.csv").status_code == 404


def test_a_bad_date_shows_the_exports_form_with_its_problem(app: StaffApp) -> None:
    answer = browser(app, "auditor").get(
        "/staff/audit/projects/meals/journal.csv?from=2026-02-30&to=2026-01-01"
    )
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    assert "not a date" in answer.text and 'value="2026-02-30"' in answer.text
    assert 'name="csrf"' in answer.text
    backwards = browser(app, "auditor").get("/staff/audit/journal.xlsx?from=2026-06-30&to=2026-06-01")
    assert backwards.status_code == 422 and "the last day is before the first" in backwards.text


def test_the_exports_form_leads_to_the_download(app: StaffApp) -> None:
    manager = browser(app, "manager")
    page = manager.get("/staff/audit/exports")
    assert page.status_code == 200
    assert 'value="meals"' in page.text and 'value="books"' not in page.text  # their projects only
    token = csrf_of(page.text)
    form = {"csrf": token, "project": "meals", "from": "2026-01-01", "to": "2026-12-31", "format": "xlsx"}
    chosen = manager.post("/staff/audit/exports", data=form, follow_redirects=False)
    assert chosen.status_code == 303
    assert (
        chosen.headers["location"] == "/staff/audit/projects/meals/journal.xlsx?from=2026-01-01&to=2026-12-31"
    )
    everything = manager.post(
        "/staff/audit/exports", data={"csrf": token, "project": "*", "format": "csv"}, follow_redirects=False
    )
    assert everything.headers["location"] == "/staff/audit/journal.csv"


def test_the_exports_form_is_shown_again_with_each_fields_problem(app: StaffApp) -> None:
    manager = browser(app, "manager")
    token = csrf_of(manager.get("/staff/audit/exports").text)
    bad = {"csrf": token, "project": "books", "from": "soon", "to": "", "format": "pdf"}
    answer = manager.post("/staff/audit/exports", data=bad, follow_redirects=False)
    assert answer.status_code == 422
    for field in ("project", "from", "format"):
        assert f'<code class="field">{field}</code>' in answer.text
    assert 'value="soon"' in answer.text
    forged = manager.post("/staff/audit/exports", data={**bad, "csrf": "0" * 64}, follow_redirects=False)
    assert forged.status_code == 403
