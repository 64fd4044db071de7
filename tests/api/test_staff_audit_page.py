"""The closed-loop view of a project, on SQLite and PostgreSQL.

A scripted life of the whole-life test's project (tests/api/test_project_whole_life.py: its
three online gifts, here one through a venue's QR code; a cash box and a charity sale; a partial
refund; two disbursements paid and evidenced with its sign-off and invoice, the larger approved
by two people; a progress report; closure returning what is left to the donors), fed to the
ledger in three batches, with a step the ledger refuses and a gift that arrives after closing.
The page's figures equal those computed here from the events the test sent, to the fen; the
reconciliation line is checked; "as of" the instant after the first batch shows that instant's
figures; the refused step shows as rejected with the ledger's reason.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from services.api.routes.staff_audit import parse_as_of
from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.adapters import tables as t
from services.ledger.adapters.store import LedgerStore
from services.ledger.read import Money, ProjectAudit
from services.ledger.service.processor import BatchProcessor
from services.platform.db import make_engine
from services.staff.domain.roles import Role
from tests.api.test_project_whole_life import INVOICE, PROJECT, SIGN_OFF
from tests.fixtures import factories as f
from tests.fixtures.ledger import eventually
from tests.fixtures.outputs import RecordingOutput
from tests.fixtures.staff import StaffApp, log_in, staff_app
from tests.ledger.domain import test_suspense_rules as suspense
from tests.ledger.ops.test_verify_and_rebuild import feed

PAGE = f"/staff/audit/projects/{PROJECT}"
MANAGER, FIN_A, FIN_B, OPERATOR = "wang.min", "fin-a", "fin-b", "op"
# (gross, fee, channel, venue) of each online gift.
GIFTS = [(80_000, 480, "web", None), (120_000, 720, "qr", "hall-1"), (6_666, 40, "web", None)]
CASH, SALE, REFUND = 32_050, 1_200, 2_000
SMALL, LARGE = 30_000, 150_000
LATE_GIFT = 5_000  # after closing: booked to suspense, not raised
# A gift to 'books' (registered, not fundraising) waits in its suspense, then is redirected here.
REDIRECTED = 4_970
OWN_APPROVAL = "an approver may not approve their own request"


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def yuan(fen: int) -> str:
    return Money(fen, "CNY").format_yuan()


def life() -> list[list[ev.Event]]:
    """The project's life in three batches (a batch applies project steps first, so closing
    comes in a batch of its own)."""
    gifts = [
        f.confirmed(PROJECT, gross, fee, channel=channel, venue_id=venue, donation_id=f"gift-{i}")
        for i, (gross, fee, channel, venue) in enumerate(GIFTS)
    ]
    redirect = suspense.requested("books", FIN_A, amount_fen=REDIRECTED, target_project_id=PROJECT)
    raising: list[ev.Event] = [
        *f.opened_project(PROJECT, name="社区果园 A community orchard"),
        *gifts,
        replace(f.offline(PROJECT, CASH, "cash_box", venue_id="hall-1"), actor=OPERATOR),
        replace(f.offline(PROJECT, SALE, "charity_sale", venue_id="hall-1", item="旧书"), actor=OPERATOR),
        f.confirmed("books", REDIRECTED + 30, 30, donation_id="to-books"),
        redirect,
        suspense.approved("books", redirect.resolution_id, FIN_B),
    ]
    d = f.disbursement
    small = {"amount_fen": SMALL, "payee": "园区苗圃 Park nursery", "purpose": "果树苗 saplings"}
    large = {"amount_fen": LARGE, "payee": "园艺工具店 Garden tools shop", "purpose": "工具 tools"}
    spending: list[ev.Event] = [
        f.refunded(PROJECT, "gift-2", REFUND),
        d(ev.DisbursementRequested, PROJECT, "d-small", MANAGER, **small),
        d(ev.DisbursementApproved, PROJECT, "d-small", FIN_A),
        d(ev.DisbursementPaid, PROJECT, "d-small", FIN_A, payout_ref="ICBC-0001"),
        d(ev.EvidenceAttached, PROJECT, "d-small", MANAGER, document_sha256=sha(SIGN_OFF)),
        d(ev.DisbursementRequested, PROJECT, "d-large", MANAGER, **large),
        d(ev.DisbursementApproved, PROJECT, "d-large", MANAGER),  # refused: their own request
        d(ev.DisbursementApproved, PROJECT, "d-large", FIN_A),
        d(ev.DisbursementApproved, PROJECT, "d-large", FIN_B),
        d(ev.DisbursementPaid, PROJECT, "d-large", FIN_B, payout_ref="ICBC-0002"),
        d(ev.EvidenceAttached, PROJECT, "d-large", FIN_A, document_sha256=sha(INVOICE)),
        f.lifecycle(ev.ProgressReported, PROJECT, MANAGER, summary="40 trees planted"),
    ]
    closing: list[ev.Event] = [
        f.lifecycle(ev.FundraisingClosed, PROJECT, MANAGER),
        f.lifecycle(ev.ProjectClosed, PROJECT, "ada", leftover_disposition="return_to_donors"),
        f.confirmed(PROJECT, LATE_GIFT, 0, donation_id="late-gift"),
    ]
    return [raising, spending, closing]


def expected(whole_life: bool) -> dict[str, int]:
    """The figures after the first batch, or the whole life, from what the test sends."""
    fees = sum(fee for _, fee, _, _ in GIFTS)
    raised = sum(gross - fee for gross, fee, _, _ in GIFTS) + CASH + SALE + REDIRECTED
    if not whole_life:
        return {
            "raised": raised,
            "disbursed": 0,
            "refunded": 0,
            "held": 0,
            "available": raised,
            "leftover": 0,
            "fees": fees,
        }
    leftover = raised - REFUND - SMALL - LARGE
    return {
        "raised": raised,
        "disbursed": SMALL + LARGE,
        "refunded": REFUND,
        "held": 0,
        "available": 0,
        "leftover": leftover,
        "fees": fees,
    }


def reconciliation_line(figures: dict[str, int]) -> str:
    """raised = disbursed + refunded + held + available + leftover (+ fees = gross), as shown."""
    parts = " + ".join(yuan(figures[k]) for k in ("disbursed", "refunded", "held", "available", "leftover"))
    gross = figures["raised"] + figures["fees"]
    return f"{yuan(figures['raised'])} = {parts} （+ {yuan(figures['fees'])} = {yuan(gross)}）"


@dataclass
class Audited:
    app: StaffApp
    after_raising: datetime  # when the first batch was recorded
    seq_after_raising: int


@pytest.fixture
def audited(tmp_path: Path, db_url: str) -> Iterator[Audited]:
    raising, spending, closing = life()
    with staff_app(tmp_path, db_url, seed=raising) as app:
        app.add("auditor", Role.AUDITOR)
        app.add("admin", Role.ADMINISTRATOR)
        app.add("manager", Role.PROJECT_MANAGER, projects=frozenset({PROJECT}))
        app.add("other-manager", Role.PROJECT_MANAGER, projects=frozenset({"meals"}))
        app.add("finance", Role.FINANCE_OFFICER)
        store = LedgerStore(make_engine(db_url))
        with store.engine.connect() as conn:
            seq, recorded = conn.execute(
                select(t.journal.c.seq, t.journal.c.recorded_at).order_by(t.journal.c.seq.desc()).limit(1)
            ).one()
        recorded = recorded if recorded.tzinfo else recorded.replace(tzinfo=UTC)
        eventually(lambda: ev.utc_now_ms() > recorded, what="a later millisecond")
        processor = BatchProcessor(store, RecordingOutput(), Topics(""), "g")
        feed(processor, spending, start=1000)
        feed(processor, closing, start=2000)
        store.engine.dispose()
        yield Audited(app, recorded, seq)


def page_of(app: StaffApp, username: str, query: str = "") -> tuple[int, str]:
    """The page as `username` sees it: its status and its HTML."""
    browser = TestClient(app.client.app)
    assert log_in(browser, username).status_code == 303
    answer = browser.get(PAGE + query, follow_redirects=False)
    return answer.status_code, answer.text


def text_of(page: str) -> str:
    """What a reader sees, in one line per element."""
    return html.unescape(re.sub(r"\s*\n\s*", "\n", re.sub(r"<[^>]+>", "", page)))


def table(page: str, name: str) -> dict[str, list[str]]:
    """A table of the page by its class: its first cell (first language only) → the others."""
    found = re.search(rf'<table class="figures {name}">(.*?)</table>', page, re.S)
    assert found is not None, name
    rows = {}
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", found.group(1), re.S):
        cells = [
            html.unescape(re.sub(r'<span class="alt"[^>]*>.*?</span>|<[^>]+>', "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


def test_the_page_equals_the_figures_of_the_events_sent_to_the_fen(audited: Audited) -> None:
    status, page = page_of(audited.app, "auditor")
    assert status == 200, page
    text = text_of(page)
    assert reconciliation_line(expected(whole_life=True)) in text
    assert "✓ 已核对，精确到分" in text and "✗" not in text
    # The journal's postings against the projection: every line the same.
    assert all(cells[-1] == "✓" for cells in table(page, "compare").values())
    # Money in by channel and by venue.
    web = [g for g in GIFTS if g[2] == "web"]
    channels = table(page, "channels")
    assert channels["网上捐赠"] == [
        str(len(web)),
        yuan(sum(g[0] for g in web)),
        yuan(sum(g[1] for g in web)),
        yuan(sum(g[0] - g[1] for g in web)),
    ]
    assert channels["扫码捐赠 · hall-1"] == ["1", yuan(120_000), yuan(720), yuan(120_000 - 720)]
    assert channels["募捐箱 · hall-1"] == ["", yuan(CASH), yuan(0), yuan(CASH)]
    assert channels["义卖 · hall-1"] == ["", yuan(SALE), yuan(0), yuan(SALE)]
    assert channels["暂挂资金转入"] == ["", yuan(REDIRECTED), yuan(0), yuan(REDIRECTED)]
    assert table(page, "venues")["hall-1"] == [yuan(120_000), yuan(CASH), yuan(SALE)]
    # Money out by payee and purpose; the late gift is in suspense, not raised.
    payees = table(page, "payees")
    assert payees["园区苗圃 Park nursery"] == ["果树苗 saplings", yuan(SMALL), yuan(0)]
    assert payees["园艺工具店 Garden tools shop"] == ["工具 tools", yuan(LARGE), yuan(0)]
    assert table(page, "suspense")["记入暂挂"] == [yuan(LATE_GIFT)]
    # Evidence by its hash, linked; lineage first in, first out: the small disbursement from the
    # first gift alone, the large from the rest of it and the second.
    for content in (SIGN_OFF, INVOICE):
        assert f'href="/staff/projects/{PROJECT}/documents/{sha(content)}"' in page
        assert f"SHA-256 {sha(content)}" in text
    lineage = re.findall(r'<p class="lineage">(.*?)</p>', page, re.S)
    assert [re.findall(r"<strong>(\d+)</strong>", p) for p in lineage] == [["1"], ["2"]]
    assert f'href="/staff/projects/{PROJECT}/disbursements/d-large"' in page
    # The redirection into the project is in its timeline, though journaled under 'books'.
    assert "暂挂资金处理批准" in text and FIN_B in text
    # And 'books', whose suspense it left: nothing raised, the suspense in and redirected out.
    browser = TestClient(audited.app.client.app)
    log_in(browser, "auditor")
    books = browser.get("/staff/audit/projects/books").text
    assert "✓ 已核对，精确到分" in text_of(books)
    suspense_lines = table(books, "suspense")
    assert suspense_lines["记入暂挂"] == [yuan(REDIRECTED)] and suspense_lines["暂挂转出"] == [
        yuan(REDIRECTED)
    ]


def test_a_refused_step_shows_as_rejected_with_the_ledgers_reason(audited: Audited) -> None:
    _, page = page_of(audited.app, "auditor")
    refused = [row for row in re.findall(r'<tr class="rejected">(.*?)</tr>', page, re.S) if MANAGER in row]
    assert len(refused) == 1
    assert "批准拨付" in refused[0] and "已拒绝" in refused[0]
    assert f'<span class="reason">{OWN_APPROVAL}</span>' in refused[0]


def test_as_of_an_instant_shows_the_figures_of_that_instant(audited: Audited) -> None:
    instant = audited.after_raising.astimezone(timezone(timedelta(hours=8))).isoformat()
    status, page = page_of(audited.app, "auditor", f"?as_of={instant.replace('+', '%2B')}")
    assert status == 200, page
    text = text_of(page)
    assert reconciliation_line(expected(whole_life=False)) in text
    assert f"As of journal seq #{audited.seq_after_raising}" in text
    assert "✓ 已核对，精确到分" in text
    assert table(page, "payees") == {"—": []}  # nothing paid yet
    assert OWN_APPROVAL not in text  # not decided yet
    assert '<strong class="status">fundraising</strong>' in page


def test_as_of_a_date_is_the_end_of_that_day_in_china() -> None:
    assert parse_as_of("2026-06-30") == datetime(2026, 6, 30, 15, 59, 59, 999_000, tzinfo=UTC)
    assert parse_as_of("2026-06-30T18:00:00Z") == datetime(2026, 6, 30, 18, tzinfo=UTC)
    assert parse_as_of("") is None


def test_as_of_before_the_project_is_404_and_a_bad_one_is_422_naming_it(audited: Audited) -> None:
    assert page_of(audited.app, "auditor", "?as_of=2020-01-01")[0] == 404
    for bad in ("yesterday", "2026-06-30T18:00:00", "2026-13-01"):
        status, page = page_of(audited.app, "auditor", f"?as_of={bad}")
        assert status == 422, bad
        assert '<code class="field">as_of</code>' in page and f'value="{bad}"' in page


def test_administrators_auditors_and_the_projects_manager_see_it_others_do_not(audited: Audited) -> None:
    for username in ("admin", "auditor", "manager"):
        assert page_of(audited.app, username)[0] == 200, username
    for username in ("other-manager", "finance"):
        assert page_of(audited.app, username)[0] == 403, username
    # The console's project page links here for those who may see it.
    for username, linked in (("manager", True), ("auditor", True), ("finance", False)):
        browser = TestClient(audited.app.client.app)
        log_in(browser, username)
        assert (f'href="{PAGE}"' in browser.get(f"/staff/projects/{PROJECT}").text) is linked, username


def test_the_timeline_is_read_a_page_at_a_time(audited: Audited, db_url: str) -> None:
    engine = make_engine(db_url, writer=False)
    try:
        audit = ProjectAudit(engine)
        now = datetime.now(UTC)
        first = audit.view(PROJECT, None, now, page=0, per_page=10)
        second = audit.view(PROJECT, None, now, page=1, per_page=10)
    finally:
        engine.dispose()
    assert first is not None and second is not None
    # The project's own entries, and the redirection into it (journaled under 'books').
    own = sum(1 for batch in life() for event in batch if event.project_id == PROJECT)
    assert len(first.timeline) == 10 and first.timeline_total == own + 1
    assert [e.seq for e in first.timeline] == sorted((e.seq for e in first.timeline), reverse=True)
    assert second.timeline[0].seq == first.timeline[-1].seq - 1


def test_a_leg_the_rules_never_wrote_and_a_projection_that_drifted_show_in_red(
    audited: Audited, db_url: str
) -> None:
    """The line is not a tautology: a stray leg on the fund (added behind the ledger's back, in
    the database) is a difference, and a projection that disagrees with the postings is marked."""
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            last = conn.scalar(select(t.journal.c.seq).order_by(t.journal.c.seq.desc()).limit(1))
            conn.execute(
                t.postings.insert().values(
                    seq=last, leg=99, account=f"project:{PROJECT}:fund", currency="CNY", amount=700
                )
            )
            conn.execute(
                t.project_totals.update()
                .where(t.project_totals.c.project_id == PROJECT)
                .values(refunded_fen=1)
            )
    finally:
        engine.dispose()
    _, page = page_of(audited.app, "auditor")
    text = text_of(page)
    assert "✓ 已核对" not in text
    assert f"✗ 不平 Mismatch: 差额 difference {yuan(-700)}" in text.replace("\n", " ")
    compare = table(page, "compare")
    assert compare["已退款"][-1] == f"✗ {yuan(REFUND - 1)}"
    assert compare["可用"][-1] == f"✗ {yuan(700)}"


def test_a_quiet_projects_figures_are_not_summed_again_when_others_move_the_journal(
    audited: Audited, db_url: str
) -> None:
    engine = make_engine(db_url, writer=False)
    store = LedgerStore(make_engine(db_url))
    try:
        audit = ProjectAudit(engine)
        before = audit.view(PROJECT, None, datetime.now(UTC))
        feed(
            BatchProcessor(store, RecordingOutput(), Topics(""), "g"),
            [f.confirmed("meals", 900, 6)],
            start=3000,
        )
        after = audit.view(PROJECT, None, datetime.now(UTC))
    finally:
        engine.dispose()
        store.engine.dispose()
    assert before is not None and after is not None
    assert after.cut_seq == before.cut_seq + 1  # the page says how far the journal went
    assert after.loop is before.loop and after.lineage is before.lineage  # remembered, not summed
