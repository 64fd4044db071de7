"""The federation's overview at /staff/audit on SQLite and PostgreSQL: every project's figures
equal the test's own sums of its events to the fen, overdue disclosures first and in red, each
column sorts, a scoped manager sees only their projects, the CSV says the same, and the
journal's verification status turns red when a tree head is forged."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient

from services.api.routes.staff_audit_overview import Row, overview_csv
from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.adapters.signing import sign_tree_head
from services.ledger.adapters.store import LedgerStore
from services.ledger.adapters.tree_heads import TreeHeadSigner
from services.ledger.domain.merkle import TreeHead
from services.ledger.read import VerificationStatus
from services.ledger.service.processor import BatchProcessor
from services.platform.db import make_engine
from services.staff.domain.roles import Role
from tests.fixtures import factories as f
from tests.fixtures.outputs import RecordingOutput
from tests.fixtures.staff import StaffApp, log_in, staff_app
from tests.ledger.ops.test_verify_and_rebuild import _insert_head, feed

pytestmark = pytest.mark.integration

D = f.disbursement
GIFTS = {  # project → (gross, fee) of each confirmed gift
    "meals": [(50_000, 300), (12_345, 74)],
    "late": [(9_999, 60)],
    "done": [(2_000, 12)],
}
OFFLINE = {"meals": [1_200], "late": [3_301]}
REFUNDS = {"meals": 5_000}
PAID = {"meals": 20_000, "done": 1_988}
# A plan that ended in March 2025: its full disclosure was due three months later.
ENDED = {"starts_on": "2025-01-01", "ends_on": "2025-03-31"}


def seed() -> list[ev.Event]:
    events: list[ev.Event] = [*f.opened_project("late", **ENDED), *f.opened_project("done")]
    for project, gifts in GIFTS.items():
        events += [
            f.confirmed(project, gross, fee, donation_id=f"{project}-{i}")
            for i, (gross, fee) in enumerate(gifts)
        ]
    events += [f.offline(project, amount) for project, amounts in OFFLINE.items() for amount in amounts]
    events += [f.refunded(project, f"{project}-0", amount) for project, amount in REFUNDS.items()]
    for project, amount in PAID.items():
        events += [
            D(ev.DisbursementRequested, project, f"x-{project}", "min", amount_fen=amount),
            D(ev.DisbursementApproved, project, f"x-{project}", "fin"),
            D(ev.DisbursementPaid, project, f"x-{project}", "fin"),
        ]
    return events


# In a later batch: a batch applies the projects topic's events before the gifts'.
CLOSING = [f.lifecycle(ev.FundraisingClosed, "done"), f.lifecycle(ev.ProjectClosed, "done")]


def expected(project: str) -> dict[str, int]:
    """Raised (gifts net of fees, plus offline money), spent, and what is left available."""
    raised = sum(gross - fee for gross, fee in GIFTS.get(project, [])) + sum(OFFLINE.get(project, []))
    spent = PAID.get(project, 0)
    return {"raised": raised, "spent": spent, "available": raised - REFUNDS.get(project, 0) - spent}


@pytest.fixture
def console(tmp_path: Path, db_url: str) -> Iterator[tuple[StaffApp, TreeHeadSigner]]:
    with staff_app(tmp_path, db_url, seed=seed()) as app:
        app.add("ada", Role.ADMINISTRATOR)
        app.add("aud", Role.AUDITOR)
        app.add("min", Role.PROJECT_MANAGER, projects=frozenset({"meals", "late"}))
        app.add("fin", Role.FINANCE_OFFICER)
        store = LedgerStore(make_engine(db_url))
        feed(BatchProcessor(store, RecordingOutput(), Topics(""), "g"), CLOSING, start=1_000)
        assert app.client.app.state.queries.project("done").status == "closed"  # type: ignore[attr-defined]
        signer = TreeHeadSigner(store.engine, Ed25519PrivateKey.generate(), RecordingOutput(), Topics(""))
        assert signer.publish_if_grown() is not None
        yield app, signer


def browser(app: StaffApp, username: str) -> TestClient:
    client = TestClient(app.client.app)
    assert log_in(client, username).status_code == 303
    return client


ROW = re.compile(r'<tr data-project="([^"]+)"( class="overdue")?>(.*?)</tr>', re.S)


def rows(html: str) -> list[tuple[str, bool, list[int]]]:
    """(project, shown overdue, [raised, spent, available] in fen) for each row, in order."""
    return [
        (project, bool(overdue), [int(fen) for fen in re.findall(r'data-fen="(-?\d+)"', cells)])
        for project, overdue, cells in ROW.findall(html)
    ]


def test_the_figures_are_the_events_own_to_the_fen(console: tuple[StaffApp, TreeHeadSigner]) -> None:
    app, _ = console
    page = browser(app, "aud").get("/staff/audit")
    assert page.status_code == 200
    shown = {project: figures for project, _, figures in rows(page.text)}
    assert set(shown) == {"meals", "books", "late", "done"}
    for project, figures in shown.items():
        assert figures == list(expected(project).values()), project
    total = re.search(r'<tr class="total" data-currency="CNY">(.*?)</tr>', page.text, re.S)
    assert total is not None
    sums = [sum(expected(p)[c] for p in shown) for c in ("raised", "spent", "available")]
    assert [int(x) for x in re.findall(r'data-fen="(-?\d+)"', total.group(1))] == sums
    assert "¥631.71" in page.text  # meals raised: 500.00 - 3.00 + 123.45 - 0.74 + 12.00
    assert 'data-verification="verified"' in page.text and "根哈希与签名已核对" in page.text
    # Each project's closed-loop page (routes/staff_audit.py).
    assert all(f'<a href="/staff/audit/projects/{p}">' in page.text for p in shown)
    # The journal exports (routes/staff_exports.py): this year's, and the form for any period.
    assert re.search(r'href="/staff/audit/journal\.csv\?from=\d{4}-01-01&amp;to=\d{4}-\d\d-\d\d"', page.text)
    assert 'href="/staff/audit/journal.xlsx?from=' in page.text and 'href="/staff/audit/exports"' in page.text


def test_overdue_disclosures_come_first_in_red(console: tuple[StaffApp, TreeHeadSigner]) -> None:
    app, _ = console
    page = browser(app, "ada").get("/staff/audit").text
    order = [(project, overdue) for project, overdue, _ in rows(page)]
    # late: overdue; meals and done: due (meals runs a year: every 3 months from opening, done
    # closed today: within 3 months); books: not fundraising yet, nothing due.
    assert order[0] == ("late", True)
    assert [p for p, overdue in order if overdue] == ["late"]
    assert order[-1] == ("books", False)
    late = ROW.search(page)
    assert late is not None and "已逾期" in late.group(3) and "2025-07-01" in late.group(3)
    assert 'aria-sort="ascending"><a href="?sort=-disclosure"' in page


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("raised", ["books", "done", "late", "meals"]),
        ("-raised", ["meals", "late", "done", "books"]),
        ("spent", ["books", "late", "done", "meals"]),
        ("-available", ["meals", "late", "books", "done"]),  # ties: by project id
        ("project", ["books", "done", "late", "meals"]),
        ("-project", ["meals", "late", "done", "books"]),
        ("state", ["books", "late", "meals", "done"]),  # in the order of a project's life
    ],
)
def test_each_column_sorts(console: tuple[StaffApp, TreeHeadSigner], sort: str, order: list[str]) -> None:
    app, _ = console
    page = browser(app, "aud").get("/staff/audit", params={"sort": sort}).text
    assert [project for project, _, _ in rows(page)] == order
    # The column's heading links to the other direction.
    column = sort.removeprefix("-")
    other = column if sort.startswith("-") else f"-{column}"
    assert f'<a href="?sort={other}" data-sort="{column}">' in page


def test_an_unknown_column_is_named(console: tuple[StaffApp, TreeHeadSigner]) -> None:
    app, _ = console
    client = browser(app, "aud")
    page = client.get("/staff/audit", params={"sort": "donors"})
    assert page.status_code == 422
    assert "no column &#39;donors&#39; to sort by" in page.text and 'data-field="sort"' in page.text
    assert client.get("/staff/audit/overview.csv", params={"sort": "donors"}).status_code == 422


def test_a_manager_sees_only_their_projects(console: tuple[StaffApp, TreeHeadSigner]) -> None:
    app, _ = console
    client = browser(app, "min")
    assert [p for p, _, _ in rows(client.get("/staff/audit").text)] == ["late", "meals"]
    table = list(csv.reader(io.StringIO(client.get("/staff/audit/overview.csv").text.removeprefix("\ufeff"))))
    assert [r[0] for r in table[1:]] == ["late", "meals"]
    assert browser(app, "fin").get("/staff/audit").status_code == 403


def test_the_csv_is_the_table(console: tuple[StaffApp, TreeHeadSigner]) -> None:
    app, _ = console
    answer = browser(app, "aud").get("/staff/audit/overview.csv", params={"sort": "-raised"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    assert answer.content.startswith(b"\xef\xbb\xbf")
    assert 'filename="audit-overview-' in answer.headers["content-disposition"]
    header, *body = csv.reader(io.StringIO(answer.content.decode("utf-8-sig")))
    assert header[0] == "project_id 项目编号" and header[3] == "currency 币种"
    assert header[4:7] == ["raised_fen 已筹(分)", "spent_fen 已拨付(分)", "available_fen 可用(分)"]
    assert [r[0] for r in body] == ["meals", "late", "done", "books"]
    for r in body:
        want = expected(r[0])
        assert [int(x) for x in r[4:7]] == list(want.values())
        assert r[7:10] == [f"{v // 100}.{v % 100:02d}" for v in want.values()]
        assert r[11] == ("yes" if r[0] == "late" else "no")
        assert r[13] == "verified"
    assert body[0][1] == "项目 meals" or body[0][1] == "乐龄助餐"


def test_a_forged_tree_head_turns_the_status_red(console: tuple[StaffApp, TreeHeadSigner]) -> None:
    app, signer = console
    client = browser(app, "aud")
    assert 'data-verification="verified"' in client.get("/staff/audit").text
    size = signer.tree.size
    head = TreeHead(size=size + 1, root=signer.tree.root(size), timestamp_ms=1)
    _insert_head(signer.engine, head, sign_tree_head(Ed25519PrivateKey.generate(), head))
    page = client.get("/staff/audit").text
    assert 'data-verification="failed"' in page and "账本校验失败" in page
    assert f"tree head of size {size + 1} covers more entries than the journal holds ({size})" in page
    assert all("verified-failed" in cells for _, _, cells in ROW.findall(page))


def test_the_console_home_leads_to_the_audit_pages_only_those_who_may_audit(
    console: tuple[StaffApp, TreeHeadSigner],
) -> None:
    app, _ = console
    audit_links = (
        'href="/staff/audit"',
        'href="/staff/audit/exports"',
        'href="/staff/audit/donor-statement"',
    )
    for who in ("aud", "min", "ada"):
        home = browser(app, who).get("/staff").text
        assert all(link in home for link in audit_links), who
    finance = browser(app, "fin").get("/staff").text
    assert not any(link in finance for link in audit_links)


def test_the_csv_does_not_hand_a_spreadsheet_a_formula() -> None:
    """A project's name is typed by staff: one that opens like a formula is quoted as text, as
    the journal exports quote theirs; the figures stay numbers."""
    row = Row("meals", '=HYPERLINK("http://x","y")', "open", "CNY", 100, 0, 100, None, "", False, "verified")
    status = VerificationStatus("verified", 3, 3, "", None, None, None, datetime.now(UTC))
    _header, line = csv.reader(io.StringIO(overview_csv([row], status).decode("utf-8-sig")))
    assert line[1] == '\'=HYPERLINK("http://x","y")'
    assert line[4:7] == ["100", "0", "100"]
