"""One project's whole life through the staff console, on the real broker and both databases.

A manager registers 'orchard' with its plan, an administrator approves it, the manager opens
fundraising; three donors give online (pledge → the WeChat Pay sandbox pays → its signed
notification); a venue operator records a cash box and a charity sale at the till; a finance
officer refunds part of a gift through the provider; two disbursements are requested by the
manager with a quote, approved by finance (the one above the threshold by two different
people), paid and evidenced; the manager reports progress and corrects the report; fundraising
closes and the administrator closes the project returning what is left to the donors.

Every step goes through the console's own forms (CSRF token from the page, the person from the
session) and waits for the ledger's decision on the page. Afterwards the project's figures
computed here from what the test itself sent equal the read side's to the fen, the journal names
the person behind every step, and `charity-ledger verify` and `rebuild --check` pass.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.contracts.topics import Topics
from services.ledger.read import Money
from services.ledger.read.queries import LedgerQueries
from services.platform.db import make_engine
from services.staff.adapters.store import StaffStore
from services.staff.domain.roles import Role
from services.staff.hashing import hash_password
from tests.api.test_giving import pledge, pledge_row, trade_no
from tests.api.test_staff_refund_pages import settled
from tests.fixtures.giving import GivingSystem, giving_settings, start_giving
from tests.fixtures.ledger import eventually
from tests.fixtures.staff import PASSWORD, csrf_of, plan_form

pytestmark = pytest.mark.integration

CHARITY_LEDGER = Path(sys.executable).with_name("charity-ledger")
THRESHOLD_FEN = 100_000  # ¥1,000: from here up, two approvers
PROJECT = "orchard"
CONSOLE = f"/staff/projects/{PROJECT}"
QUOTE = b"%PDF-1.4\n% quote for saplings\n%%EOF\n"
INVOICE = b"%PDF-1.4\n% invoice\n%%EOF\n"
SIGN_OFF = b"\x89PNG\r\n\x1a\n" + b"\x02" * 48
PEOPLE = [
    ("ada", Role.ADMINISTRATOR),
    ("wang.min", Role.PROJECT_MANAGER),
    ("fin-a", Role.FINANCE_OFFICER),
    ("fin-b", Role.FINANCE_OFFICER),
    ("op", Role.VENUE_OPERATOR),
]


@dataclass
class Charity:
    giving: GivingSystem
    queries: LedgerQueries
    staff: dict[str, httpx.Client]


def logged_in(base_url: str, username: str) -> httpx.Client:
    browser = httpx.Client(base_url=base_url, timeout=30)
    token = csrf_of(browser.get("/staff/login").text)
    answer = browser.post("/staff/login", data={"username": username, "password": PASSWORD, "csrf": token})
    assert answer.status_code == 303, answer.text
    return browser


def start_console(
    kafka_bootstrap: str,
    topics: Topics,
    db_url: str,
    var: Path,
    people: Sequence[tuple[str, Role]],
    **kw: object,
) -> tuple[GivingSystem, StaffStore]:
    """The whole giving system on loopback, documents kept under `var`, and an account for each
    of `people` (a venue operator runs hall-1)."""
    settings = giving_settings(
        kafka_bootstrap, topics, db_url, var, documents_dir=str(var / "documents"), **kw
    )
    system = start_giving(settings)
    store = StaffStore(make_engine(db_url))
    for username, role in people:
        venues = frozenset({"hall-1"}) if role is Role.VENUE_OPERATOR else frozenset()
        store.add_account(username, role, hash_password(PASSWORD), 1, venues=venues)
    return system, store


@pytest.fixture
def charity(kafka_bootstrap: str, topics: Topics, db_url: str, tmp_path: Path) -> Iterator[Charity]:
    """An administrator, a manager, two finance officers and an operator of hall-1, each logged in
    in their own browser; two approvers from ¥1,000."""
    system, store = start_console(
        kafka_bootstrap, topics, db_url, tmp_path, PEOPLE, disbursement_dual_approval_fen=THRESHOLD_FEN
    )
    reader = make_engine(db_url, writer=False)
    staff = {username: logged_in(system.settings.public_base_url, username) for username, _ in PEOPLE}
    try:
        yield Charity(system, LedgerQueries(reader), staff)
    finally:
        for browser in staff.values():
            browser.close()
        system.stop()
        reader.dispose()
        store.engine.dispose()


def decided(browser: httpx.Client, answer: httpx.Response) -> str:
    """Where a form led (303), once the ledger has decided what it sent: that page's text."""
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]

    def shown() -> str | None:
        page = browser.get(location).text
        return None if "Sent; the ledger has not decided yet." in page else page

    eventually(shown, what=f"the ledger's decision at {location}")
    return browser.get(location).text


def send(browser: httpx.Client, page: str, to: str, files: object = None, **fields: str) -> str:
    """Fill in a form shown on `page` (its CSRF token), send it to `to`; the decided page."""
    token = csrf_of(browser.get(page).text)
    answer = browser.post(to, data={"csrf": token, **fields}, files=files)  # type: ignore[arg-type]
    return decided(browser, answer)


def request_disbursement(manager: httpx.Client, payee: str, yuan: str) -> tuple[str, str]:
    """A request with its quote; the disbursement's id and its decided page."""
    token = csrf_of(manager.get(f"{CONSOLE}/disbursements/new").text)
    answer = manager.post(
        f"{CONSOLE}/disbursements",
        data={
            "csrf": token,
            "payee": payee,
            "purpose": "果树苗与工具 saplings and tools",
            "amount_yuan": yuan,
            "planned_on": "2027-01-15",
        },
        files={"documents": ("报价单.pdf", QUOTE, "application/pdf")},
    )
    found = re.fullmatch(rf"{CONSOLE}/disbursements/([0-9a-f-]{{36}})\?sent=.+", answer.headers["location"])
    assert found is not None, answer.headers
    return found.group(1), decided(manager, answer)


def disbursement_step(browser: httpx.Client, disbursement_id: str, step: str, **fields: str) -> str:
    path = f"{CONSOLE}/disbursements/{disbursement_id}"
    return send(browser, path, f"{path}/{step}", **fields)


def attach_evidence(browser: httpx.Client, disbursement_id: str, name: str, content: bytes, kind: str) -> str:
    path = f"{CONSOLE}/disbursements/{disbursement_id}"
    files = {"document": (name, content, kind)}
    return send(browser, path, f"{path}/evidence", files=files, description=f"凭证 evidence: {name}")


def give(giving: GivingSystem, amount_fen: int) -> tuple[str, str]:
    """A donor's gift paid in the sandbox and confirmed: its donation id and receipt number."""
    made = pledge(giving.api, project_id=PROJECT, amount_fen=amount_fen)
    assert giving.sandbox.post(f"/sandbox/orders/{trade_no(made)}/pay").status_code == 200
    eventually(lambda: pledge_row(giving, made["donation_id"]).status == "confirmed", what="confirmed")
    row = pledge_row(giving, made["donation_id"])
    return str(row.donation_id), str(row.receipt_no)


def refund(fin: httpx.Client, receipt_no: str, yuan: str, reason: str) -> str:
    page = fin.get("/staff/refunds", params={"q": receipt_no}).text
    refund_id = re.search(r'name="refund_id" value="([^"]+)"', page)
    action = re.search(r'action="(/staff/refunds/[^"]+)"', page)
    assert refund_id and action, page
    data = {"csrf": csrf_of(page), "refund_id": refund_id.group(1), "amount_yuan": yuan, "reason": reason}
    return decided(fin, fin.post(action.group(1), data=data))


def charity_ledger(*args: str) -> subprocess.CompletedProcess[str]:
    """The operator's command, in a subprocess with no CHARITY_* settings from this process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHARITY_")}
    return subprocess.run(
        [str(CHARITY_LEDGER), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_a_project_from_registration_to_closure_reconciles_to_the_fen(charity: Charity, db_url: str) -> None:
    ada, manager, fin_a, fin_b, op = (charity.staff[name] for name, _ in PEOPLE)
    giving, queries = charity.giving, charity.queries

    # Registration, approval, fundraising: each person's own step.
    plan = {**plan_form(PROJECT), "name": "社区果园 A community orchard", "area": "苏州工业园区"}
    page = send(manager, "/staff/projects/new", "/staff/projects", **plan)
    assert "The ledger recorded" in page
    assert "The ledger recorded" in send(ada, CONSOLE, f"{CONSOLE}/approve")
    assert "The ledger recorded" in send(manager, CONSOLE, f"{CONSOLE}/open-fundraising")
    assert queries.project(PROJECT).status == "fundraising"  # type: ignore[union-attr]

    # Three donors give online.
    gifts_fen = [80_000, 120_000, 6_666]
    gifts = [give(giving, amount) for amount in gifts_fen]

    # The till: a cash box and a charity sale at the operator's own venue.
    till = "/staff/till/hall-1"
    page = send(op, "/staff/till", till, project_id=PROJECT, kind="cash_box", amount_yuan="320.50")
    assert "OfflineDonationRecorded (posted)" in page
    sale = {"project_id": PROJECT, "kind": "charity_sale", "item": "旧书《边城》", "amount_yuan": "12"}
    assert "OfflineDonationRecorded (posted)" in send(op, "/staff/till", till, **sale)

    # A partial refund of the smallest gift, through the provider.
    small_id, small_receipt = gifts[2]
    page = refund(fin_a, small_receipt, "20.00", "捐错金额 the donor typed the wrong amount")
    assert "DonationRefunded (posted)" in page and "¥46.66" in page  # still refundable

    # Below the threshold: one approver, then paid, then the beneficiaries' sign-off.
    small, page = request_disbursement(manager, "园区苗圃 Park nursery", "300.00")
    assert "The ledger recorded" in page
    page = disbursement_step(fin_a, small, "approve", comment="报价合理 the quote is fair")
    assert '<strong class="state">held</strong>' in page
    page = disbursement_step(fin_a, small, "pay", payout_ref="ICBC-20270115-0001")
    assert '<strong class="state">paid</strong>' in page and "ICBC-20270115-0001" in page
    page = attach_evidence(manager, small, "签收.png", SIGN_OFF, "image/png")
    assert f"SHA-256 {hashlib.sha256(SIGN_OFF).hexdigest()}" in page

    # Above the threshold: two different finance officers; the same one twice is refused.
    large, page = request_disbursement(manager, "园艺工具店 Garden tools shop", "1500")
    assert "needs 2 approvals, 0 given" in page
    page = disbursement_step(fin_a, large, "approve")
    assert "approval 1 of 2" in page and "needs 2 approvals, 1 given" in page
    path = f"{CONSOLE}/disbursements/{large}"
    again = fin_a.post(f"{path}/approve", data={"csrf": csrf_of(fin_a.get(path).text)})
    assert again.status_code == 409 and "you have already approved this disbursement" in again.text
    page = disbursement_step(fin_b, large, "approve", comment="第二人复核 second approver")
    assert '<strong class="state">held</strong>' in page
    page = disbursement_step(fin_b, large, "pay", payout_ref="ICBC-20270116-0002")
    assert '<strong class="state">paid</strong>' in page
    page = attach_evidence(fin_a, large, "发票.pdf", INVOICE, "application/pdf")
    assert f"SHA-256 {hashlib.sha256(INVOICE).hexdigest()}" in page

    # A progress report and its correction: both stay disclosed.
    page = send(manager, CONSOLE, f"{CONSOLE}/report-progress", summary="已种下 40 棵果树 40 trees planted")
    assert "ProgressReported" in page
    [report] = queries.project_entries(PROJECT, ["ProgressReported"])
    note = {"corrects_event_id": report.record["entry_id"], "note": "应为 45 棵 It was 45 trees"}
    assert "CorrectionPublished" in send(manager, CONSOLE, f"{CONSOLE}/publish-correction", **note)
    public = giving.api.get(f"/projects/{PROJECT}").text
    assert "40 trees planted" in public and "It was 45 trees" in public

    # Closure: fundraising ends, then the project closes returning what is left to the donors.
    send(manager, CONSOLE, f"{CONSOLE}/close-fundraising", reason="季末 end of season")
    page = send(ada, CONSOLE, f"{CONSOLE}/close", leftover_disposition="return_to_donors")
    assert "The ledger recorded" in page
    settled(giving)

    # What the test itself sent, summed here, against the read side, to the fen.
    fees = sum(int(pledge_row(giving, donation_id).fee_fen or 0) for donation_id, _ in gifts)
    gross = sum(gifts_fen)
    cash, sales, refunded, disbursed = 32_050, 1_200, 2_000, 30_000 + 150_000
    raised = gross - fees + cash + sales
    leftover = raised - refunded - disbursed
    expected = {
        "status": "closed",
        "gross_fen": gross,
        "fees_fen": fees,
        "net_fen": gross - fees,
        "offline_cash_fen": cash,
        "offline_sales_fen": sales,
        "raised_fen": raised,
        "donations_count": 3,
        "refunded_fen": refunded,
        "disbursed_fen": disbursed,
        "held_fen": 0,
        "available_fen": 0,
        "suspense_fen": 0,
        "redirected_in_fen": 0,
        "leftover_fen": leftover,
    }
    totals = giving.api.get(f"/api/projects/{PROJECT}/totals").json()
    assert {key: totals[key] for key in expected} == expected
    # raised = disbursed + refunded + held + available + leftover; gross = net + fees.
    assert totals["raised_fen"] == sum(
        totals[k] for k in ("disbursed_fen", "refunded_fen", "held_fen", "available_fen", "leftover_fen")
    )
    # The journal's own postings say the same: the fund was emptied to the fen.
    statement = queries.statement(PROJECT)
    assert statement[-1]["available_after_fen"] == 0
    assert sum(line["fund_change_fen"] for line in statement) == 0
    assert sum(line["held_change_fen"] for line in statement) == 0

    # Every step in the journal under the name of the person who took it, as the ledger decided it.
    steps = [
        (e.record["kind"], e.record["body"].get("actor"), e.record["decision"])
        for e in queries.project_entries(PROJECT)
        if e.record["kind"] not in ("DonationPledged", "DonationConfirmed", "OfflineDonationRecorded")
    ]
    assert steps == [
        ("ProjectRegistered", "wang.min", "recorded"),
        ("ProjectApproved", "ada", "recorded"),
        ("FundraisingOpened", "wang.min", "recorded"),
        ("DonationRefunded", "fin-a", "posted"),
        ("DisbursementRequested", "wang.min", "recorded"),
        ("DisbursementApproved", "fin-a", "posted"),
        ("DisbursementPaid", "fin-a", "posted"),
        ("EvidenceAttached", "wang.min", "recorded"),
        ("DisbursementRequested", "wang.min", "recorded"),
        ("DisbursementApproved", "fin-a", "recorded"),
        ("DisbursementApproved", "fin-b", "posted"),
        ("DisbursementPaid", "fin-b", "posted"),
        ("EvidenceAttached", "fin-a", "recorded"),
        ("ProgressReported", "wang.min", "recorded"),
        ("CorrectionPublished", "wang.min", "recorded"),
        ("FundraisingClosed", "wang.min", "recorded"),
        ("ProjectClosed", "ada", "posted"),
    ]
    offline = [e.record for e in queries.project_entries(PROJECT, ["OfflineDonationRecorded"])]
    assert [(r["body"]["actor"], r["body"]["amount_fen"]) for r in offline] == [("op", cash), ("op", sales)]
    assert queries.donation(small_id)["refunded_fen"] == refunded  # type: ignore[index]

    # The closed-loop page (routes/staff_audit.py) reconciles the same figures from the postings.
    page = ada.get(f"/staff/audit/projects/{PROJECT}").text
    amounts = (raised, disbursed, refunded, 0, 0, leftover, fees, raised + fees)
    yuan = [Money(fen, "CNY").format_yuan() for fen in amounts]
    assert f"{yuan[0]} = {' + '.join(yuan[1:6])} （+ {yuan[6]} = {yuan[7]}）" in page
    assert 'class="ok reconciled"' in page and 'class="differs"' not in page

    # The operator's checks: the chain, the tree heads, the balances and projections.
    giving.ledger.app.signer.publish_if_grown()
    verified = charity_ledger("verify", "--quiet", "--database-url", db_url)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.startswith("OK: ") and "projections equal a rebuild" in verified.stdout
    rebuilt = charity_ledger("rebuild", "--check", "--quiet", "--database-url", db_url)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
