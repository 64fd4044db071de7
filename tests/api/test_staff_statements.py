"""A project's statement for a period and its disclosure report (print page and PDF), on a ledger
fed a scripted year, on SQLite and PostgreSQL: every figure equals the test's own sum of its
events, to the fen; the page reconciles; the PDF is a PDF whose text holds the purpose in
Chinese and the amounts."""

from __future__ import annotations

import dataclasses
import io
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import func, select

from services.contracts import events as ev
from services.ledger.adapters import tables as t
from services.ledger.domain.money import Money
from services.staff.domain.roles import Role
from tests.fixtures import factories as f
from tests.fixtures.staff import StaffApp, log_in, staff_app

CHINA = ZoneInfo("Asia/Shanghai")
D = f.disbursement


def at(event: ev.Event, day: str, hour: int = 12) -> ev.Event:
    """The event, effective at noon (China time) of `day`."""
    when = datetime.combine(date.fromisoformat(day), datetime.min.time(), CHINA) + timedelta(hours=hour)
    return dataclasses.replace(event, occurred_at=when.astimezone(UTC))


GIFT_A = f.confirmed("meals", 10_000, 60, donation_id="gift-a")
GIFT_B = f.confirmed("meals", 5_000, 30, donation_id="gift-b", channel="qr", venue_id="hall-1")
TOO_MUCH = at(f.refunded("meals", "gift-a", 9_000), "2026-03-06")  # more than refundable: refused
# The year: before March, in March (the period), after March. Effective times are what count.
YEAR: list[ev.Event] = [
    at(GIFT_A, "2026-02-10"),
    at(f.offline("meals", 2_500), "2026-02-20"),
    at(GIFT_B, "2026-03-01", hour=0),  # the period's first minute, China time
    at(f.offline("meals", 1_234, kind="charity_sale"), "2026-03-05"),
    at(f.refunded("meals", "gift-a", 3_000), "2026-03-06"),
    TOO_MUCH,
    at(D(ev.DisbursementRequested, "meals", "d-1", "min", amount_fen=4_000, payee="助餐点"), "2026-03-10"),
    at(D(ev.DisbursementApproved, "meals", "d-1", "fin"), "2026-03-11"),
    at(D(ev.DisbursementPaid, "meals", "d-1", "fin"), "2026-03-12"),
    at(D(ev.DisbursementRequested, "meals", "d-2", "min", amount_fen=1_000, payee="粮油店"), "2026-03-20"),
    at(D(ev.DisbursementApproved, "meals", "d-2", "fin"), "2026-03-31", hour=23),  # held at the end
    at(f.confirmed("meals", 7_000, 40), "2026-04-01", hour=0),  # the minute after the period
    at(f.lifecycle(ev.ProgressReported, "meals", summary="三月共送餐 1200 份"), "2026-03-31"),
]
REPORT = YEAR[-1]
YEAR.append(
    at(
        f.lifecycle(ev.CorrectionPublished, "meals", corrects_event_id=REPORT.event_id, note="应为 1210 份"),
        "2026-04-02",
    )
)
START = datetime(2026, 3, 1, tzinfo=CHINA)
END = datetime(2026, 4, 1, tzinfo=CHINA)


def change_of(e: ev.Event) -> tuple[str, int]:
    """The test's own reading of what each event does to the project's money, and its kind."""
    if isinstance(e, ev.DonationConfirmed):
        return ("online_qr" if e.channel == "qr" else "online_web"), e.gross_fen - e.fee_fen
    if isinstance(e, ev.OfflineDonationRecorded):
        return e.kind, e.amount_fen
    if isinstance(e, ev.DonationRefunded):
        return "refunds", 0 if e is TOO_MUCH else -e.amount_fen
    if isinstance(e, ev.DisbursementPaid):
        return "disbursed", -4_000
    return "", 0  # holds move money between the fund and held: not in or out


def expected() -> dict[str, int]:
    figures = dict.fromkeys(("opening", "online_web", "online_qr", "cash_box", "charity_sale"), 0)
    figures |= {"refunds": 0, "disbursed": 0, "closing": 0}
    for e in YEAR:
        kind, fen = change_of(e)
        if e.occurred_at < START:
            figures["opening"] += fen
        elif e.occurred_at < END and kind:
            figures[kind] += abs(fen)
        if e.occurred_at < END:
            figures["closing"] += fen
    figures["in"] = sum(figures[k] for k in ("online_web", "online_qr", "cash_box", "charity_sale"))
    figures["out"] = figures["refunds"] + figures["disbursed"]
    figures["held"] = 1_000
    return figures


def yuan(fen: int) -> str:
    return Money(fen, "CNY").format_yuan()


def figures_on(page: str) -> dict[str, str]:
    return dict(re.findall(r'data-figure="([a-z_]+)">([^<]+)<', page))


@pytest.fixture
def app(tmp_path: Path, db_url: str) -> Iterator[StaffApp]:
    with staff_app(tmp_path, db_url, seed=YEAR) as made:
        made.add("aud", Role.AUDITOR)
        made.add("min", Role.PROJECT_MANAGER, projects=frozenset({"meals"}))
        made.add("other", Role.PROJECT_MANAGER, projects=frozenset({"books"}))
        yield made


def test_the_statement_of_a_period_equals_the_events_to_the_fen(app: StaffApp) -> None:
    log_in(app.client, "aud")
    page = app.client.get("/staff/audit/projects/meals/statement?from=2026-03-01&to=2026-03-31")
    assert page.status_code == 200, page.text
    want = expected()
    assert (
        want["opening"] == 9_940 + 2_500
        and want["closing"] == want["opening"] + 4_970 + 1_234 - 3_000 - 4_000
    )
    shown = figures_on(page.text)
    assert shown == {
        k: yuan(v) for k, v in want.items() if v or k in ("opening", "closing", "in", "out", "held")
    }
    assert 'data-reconciles="yes"' in page.text
    # The closing balance is the ledger's own balance as of the period's end (fund + held).
    queries = app.client.app.state.queries  # type: ignore[attr-defined]
    balances = queries.balances_as_of("meals", END.astimezone(UTC) - timedelta(milliseconds=1))
    assert balances["available_fen"] + balances["held_fen"] == want["closing"]
    assert balances["held_fen"] == want["held"]


def test_the_whole_year_reconciles_and_a_bad_period_is_named(app: StaffApp) -> None:
    log_in(app.client, "min")  # the project's own manager
    page = app.client.get("/staff/audit/projects/meals/statement?from=2026-01-01&to=2026-12-31")
    assert figures_on(page.text)["opening"] == yuan(0)
    assert figures_on(page.text)["closing"] == yuan(sum(change_of(e)[1] for e in YEAR))
    assert 'data-reconciles="yes"' in page.text
    backwards = app.client.get("/staff/audit/projects/meals/statement?from=2026-03-02&to=2026-03-01")
    assert backwards.status_code == 422 and "the last day is before the first" in backwards.text
    not_a_date = app.client.get("/staff/audit/projects/meals/statement?from=2026-02-30")
    assert not_a_date.status_code == 422 and "&#39;2026-02-30&#39;，请写成 2026-01-31" in not_a_date.text
    assert app.client.get("/staff/audit/projects/nowhere/statement").status_code == 403  # not theirs
    # The last day left empty is today: a first day after it is a period backwards too.
    future = app.client.get("/staff/audit/projects/meals/statement?from=2999-01-01")
    assert future.status_code == 422 and "the first day is after today" in future.text


def test_another_managers_project_is_refused(app: StaffApp) -> None:
    log_in(app.client, "other")
    for path in ("statement", "disclosure", "disclosure.pdf"):
        assert app.client.get(f"/staff/audit/projects/meals/{path}").status_code == 403


def test_the_disclosure_report_prints_and_its_pdf_holds_the_purpose_and_the_amounts(
    app: StaffApp, tmp_path: Path
) -> None:
    log_in(app.client, "aud")
    for path in ("statement", "disclosure", "disclosure.pdf"):
        assert app.client.get(f"/staff/audit/projects/nowhere/{path}").status_code == 404
    page = app.client.get("/staff/audit/projects/meals/disclosure")
    assert page.status_code == 200
    assert '<link rel="stylesheet" href="/static/print.css" media="print">' in page.text
    css = app.client.get("/static/print.css")
    assert css.status_code == 200 and "header.site" in css.text and "display: none" in css.text
    raised = sum(abs(v) for e in YEAR if (v := change_of(e)[1]) > 0)
    balance = sum(change_of(e)[1] for e in YEAR)
    shown = figures_on(page.text)
    assert shown["raised"] == yuan(raised) and shown["balance"] == yuan(balance)
    assert shown["refunds"] == yuan(3_000) and shown["disbursed"] == yuan(4_000)
    assert "为社区老人提供助餐" in page.text and "三月共送餐 1200 份" in page.text
    assert "应为 1210 份" in page.text and 'data-reconciles="yes"' in page.text

    pdf = app.client.get("/staff/audit/projects/meals/disclosure.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and b"%%EOF" in pdf.content[-32:]
    assert re.fullmatch(
        r'attachment; filename="disclosure-meals-\d{4}-\d{2}-\d{2}\.pdf"', pdf.headers["content-disposition"]
    )
    (tmp_path / "disclosure.pdf").write_bytes(pdf.content)
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    squeezed = re.sub(r"\s+", "", text)
    for wanted in ("为社区老人提供助餐", "高龄老人", "三月共送餐1200份", "应为1210份", "助餐点"):
        assert wanted in squeezed, wanted
    for fen in (raised, balance, 3_000, 4_000, 1_000):
        assert yuan(fen) in text, yuan(fen)


def test_the_same_report_is_public_and_linked_from_the_project_page(app: StaffApp) -> None:
    anyone = TestClient(app.client.app)  # nobody logged in
    assert 'href="/projects/meals/disclosure"' in anyone.get("/projects/meals").text
    page = anyone.get("/projects/meals/disclosure")
    assert page.status_code == 200 and 'href="/projects/meals/disclosure.pdf"' in page.text
    assert figures_on(page.text)["balance"] == yuan(sum(change_of(e)[1] for e in YEAR))
    assert "/staff/" not in page.text.split("<main>")[1]
    pdf = anyone.get("/projects/meals/disclosure.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert anyone.get("/projects/nowhere/disclosure").status_code == 404


def test_money_redirected_out_of_another_projects_suspense_is_money_in(tmp_path: Path, db_url: str) -> None:
    """The redirection is booked on the other project's entry; the statement finds it by the
    posting to this project's fund. The other project's suspense is none of its own money."""
    L = f.lifecycle
    moved = [
        at(f.confirmed("books", 2_000, 0), "2026-05-02"),  # 'books' is not fundraising: to suspense
        at(
            L(
                ev.SuspenseResolutionRequested,
                "books",
                "fin-1",
                resolution_id="sr-1",
                action="redirect",
                amount_fen=1_500,
                currency="CNY",
                target_project_id="meals",
                reason="捐赠人同意转入",
            ),
            "2026-05-03",
        ),
        at(L(ev.SuspenseResolutionApproved, "books", "fin-2", resolution_id="sr-1"), "2026-05-04"),
    ]
    with staff_app(tmp_path, db_url, seed=moved) as made:
        made.add("aud", Role.AUDITOR)
        log_in(made.client, "aud")
        may = "?from=2026-05-01&to=2026-05-31"
        meals = figures_on(made.client.get(f"/staff/audit/projects/meals/statement{may}").text)
        assert meals == {
            "opening": yuan(0),
            "redirected_in": yuan(1_500),
            "in": yuan(1_500),
            "out": yuan(0),
            "closing": yuan(1_500),
            "held": yuan(0),
        }
        books = figures_on(made.client.get(f"/staff/audit/projects/books/statement{may}").text)
        assert books["in"] == books["closing"] == yuan(0)


def test_a_leg_added_behind_the_ledgers_back_does_not_reconcile(app: StaffApp) -> None:
    """The closing balance is also summed by the database from the postings table on its own:
    a leg added there, and not in the hashed entry, shows as a statement that does not
    reconcile, on the page and in the disclosure report."""
    log_in(app.client, "aud")
    engine = app.client.app.state.queries.engine  # type: ignore[attr-defined]
    fund = "project:meals:fund"
    with engine.begin() as conn:
        seq = conn.scalar(select(func.max(t.postings.c.seq)).where(t.postings.c.account == fund))
        conn.execute(t.postings.insert().values(seq=seq, leg=99, account=fund, currency="CNY", amount=700))
    page = app.client.get("/staff/audit/projects/meals/statement?from=2026-01-01&to=2026-12-31")
    assert page.status_code == 200 and 'data-reconciles="no"' in page.text
    assert 'data-reconciles="no"' in app.client.get("/staff/audit/projects/meals/disclosure").text
