"""Refunds of online gifts through the console's page: the WeChat Pay sandbox refunds, then the
ledger books DonationRefunded; real broker, both databases, the API and the sandbox over HTTP."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from services.contracts.topics import Topics
from services.payments.sandbox.simulator import WechatPaySimulator
from services.platform.db import make_engine
from services.staff.adapters.store import StaffStore
from services.staff.domain.roles import Role
from services.staff.hashing import hash_password
from tests.api.test_giving import STAFF, open_project, pledge, pledge_row, trade_no
from tests.fixtures.giving import GivingSystem
from tests.fixtures.ledger import eventually, inputs_consumed
from tests.fixtures.staff import PASSWORD, csrf_of

pytestmark = pytest.mark.integration


def logged_in(giving: GivingSystem, username: str, role: Role) -> httpx.Client:
    engine = make_engine(giving.settings.database_url)
    StaffStore(engine).add_account(username, role, hash_password(PASSWORD), 1)
    engine.dispose()
    browser = httpx.Client(base_url=giving.settings.public_base_url, timeout=30)
    token = csrf_of(browser.get("/staff/login").text)
    answer = browser.post("/staff/login", data={"username": username, "password": PASSWORD, "csrf": token})
    assert answer.status_code == 303, answer.text
    return browser


def paid_gift(giving: GivingSystem, amount_fen: int = 5000) -> Any:
    made = pledge(giving.api, amount_fen=amount_fen)
    assert giving.sandbox.post(f"/sandbox/orders/{trade_no(made)}/pay").status_code == 200
    eventually(lambda: pledge_row(giving, made["donation_id"]).status == "confirmed", what="confirmed")
    totals = "/api/projects/meals/totals"
    eventually(
        lambda: giving.api.get(totals).json()["gross_fen"] >= amount_fen, what="the gift in the ledger"
    )
    return pledge_row(giving, made["donation_id"])


def refund(browser: httpx.Client, query: str, **fields: str) -> httpx.Response:
    """Find the gift on the page and send its refund form (with the form's own refund id)."""
    page = browser.get("/staff/refunds", params={"q": query}).text
    refund_id = re.search(r'name="refund_id" value="([^"]+)"', page)
    action = re.search(r'action="(/staff/refunds/[^"]+)"', page)
    assert refund_id and action, page
    data = {"csrf": csrf_of(page), "refund_id": refund_id.group(1), **fields}
    return browser.post(action.group(1), data=data)


def decided(browser: httpx.Client, location: str) -> str:
    def shown() -> str | None:
        text = browser.get(location).text
        return None if "Sent; the ledger has not decided yet." in text else text

    eventually(shown, what="the ledger's decision on the refund")
    return browser.get(location).text


def settled(giving: GivingSystem) -> None:
    settings, engine = giving.settings, giving.ledger.app.store.engine
    topics = Topics(settings.topic_prefix)
    eventually(lambda: inputs_consumed(engine, settings.kafka_bootstrap, topics), what="every input applied")


def simulator(giving: GivingSystem) -> WechatPaySimulator:
    app: Any = giving.servers[1].config.app  # the sandbox's FastAPI app
    sim: WechatPaySimulator = app.state.simulator
    return sim


def refunded(giving: GivingSystem) -> int:
    return int(giving.api.get("/api/projects/meals/totals").json()["refunded_fen"])


def test_a_finance_officer_refunds_part_then_the_rest_through_the_provider(giving: GivingSystem) -> None:
    open_project(giving.api, "meals")
    gift = paid_gift(giving)
    fin = logged_in(giving, "fin", Role.FINANCE_OFFICER)
    page = fin.get("/staff/refunds", params={"q": gift.receipt_no}).text
    assert gift.donation_id in page and "¥50.00" in page

    part = refund(fin, gift.receipt_no, amount_yuan="20", reason="捐错金额 wrong amount")
    assert part.status_code == 303, part.text
    shown = decided(fin, part.headers["location"])
    assert "DonationRefunded (posted)" in shown and "¥30.00" in shown
    order = simulator(giving).orders.by_trade_no(gift.out_trade_no)
    assert order.refunded_fen == 2000  # the provider returned the money first
    assert refunded(giving) == 2000

    # The same form sent again is the same refund: the provider's, and the ledger's.
    again = fin.post(
        part.request.url.path,
        data=dict(httpx.QueryParams(part.request.content.decode())),
    )
    assert again.status_code == 303
    assert simulator(giving).orders.by_trade_no(gift.out_trade_no).refunded_fen == 2000

    rest = refund(fin, gift.donation_id, amount_yuan="30.00", reason="donor asked")
    assert "DonationRefunded (posted)" in decided(fin, rest.headers["location"])
    assert refunded(giving) == 5000
    assert simulator(giving).orders.by_trade_no(gift.out_trade_no).refunded_fen == 5000
    settings = giving.settings
    eventually(
        lambda: inputs_consumed(
            giving.ledger.app.store.engine, settings.kafka_bootstrap, Topics(settings.topic_prefix)
        ),
        what="every input applied",
    )
    assert refunded(giving) == 5000  # the resent form was applied once


def test_bad_refunds_are_refused_and_nothing_is_refunded_or_published(giving: GivingSystem) -> None:
    open_project(giving.api, "meals")
    gift = paid_gift(giving)
    fin = logged_in(giving, "fin", Role.FINANCE_OFFICER)
    zero = refund(fin, gift.receipt_no, amount_yuan="0", reason="x")
    assert zero.status_code == 422 and "amount_yuan" in zero.text
    over = refund(fin, gift.receipt_no, amount_yuan="50.01", reason="x")
    assert over.status_code == 422 and "still refundable" in over.text
    no_reason = refund(fin, gift.receipt_no, amount_yuan="1", reason="")
    assert no_reason.status_code == 422 and '<code class="field">reason</code>' in no_reason.text
    unknown = fin.get("/staff/refunds", params={"q": "SIP-2026-9999999"})
    assert unknown.status_code == 404 and "no gift" in unknown.text
    stale = fin.post(
        f"/staff/refunds/{gift.donation_id}",
        data={"csrf": "0" * 64, "refund_id": "rf-" + "0" * 20, "amount_yuan": "1", "reason": "x"},
    )
    assert stale.status_code == 403 and "表单已过期" in stale.text
    # A person without the permission is refused (403, logged).
    operator = logged_in(giving, "op", Role.VENUE_OPERATOR)
    assert operator.get("/staff/refunds").status_code == 403
    assert simulator(giving).orders.by_trade_no(gift.out_trade_no).refunded_fen == 0
    settings = giving.settings
    eventually(
        lambda: inputs_consumed(
            giving.ledger.app.store.engine, settings.kafka_bootstrap, Topics(settings.topic_prefix)
        ),
        what="every input applied",
    )
    assert refunded(giving) == 0


def test_a_gift_paid_after_closing_waits_in_suspense_and_two_people_refund_it(giving: GivingSystem) -> None:
    open_project(giving.api, "meals")
    made = pledge(giving.api, amount_fen=3000)
    closing = giving.api.post(
        "/api/projects/meals/close-fundraising", json={"reason": "goal reached"}, headers=STAFF
    )
    assert closing.status_code == 202
    totals = "/api/projects/meals/totals"
    eventually(lambda: giving.api.get(totals).json()["status"] == "fundraising_closed", what="closed")
    # Paid after the project closed: the money is a fact, booked to the project's suspense.
    assert giving.sandbox.post(f"/sandbox/orders/{trade_no(made)}/pay").status_code == 200
    eventually(lambda: giving.api.get(totals).json()["suspense_fen"] > 0, what="the gift in suspense")
    gift = pledge_row(giving, made["donation_id"])
    suspended = giving.api.get(totals).json()["suspense_fen"]

    fin_a = logged_in(giving, "fin-a", Role.FINANCE_OFFICER)
    fin_b = logged_in(giving, "fin-b", Role.FINANCE_OFFICER)
    # The refund page sends it to suspense's four eyes instead.
    direct = refund(fin_a, gift.receipt_no, amount_yuan="1", reason="x")
    assert direct.status_code == 422 and "held in suspense" in direct.text
    page = fin_a.get("/staff/suspense").text
    asked = fin_a.post(
        "/staff/suspense/meals/requests",
        data={
            "csrf": csrf_of(page),
            "action": "refund",
            "donation_id": gift.donation_id,
            "amount_yuan": f"{suspended // 100}.{suspended % 100:02d}",
            "reason": "paid after closing",
        },
    )
    assert asked.status_code == 303, asked.text
    shown = decided(fin_a, asked.headers["location"])
    reasons = re.findall(r'"(?:reason|decided)">([^<]+)', shown)
    assert "SuspenseResolutionRequested (recorded)" in shown, reasons
    approve = re.search(
        r'action="(/staff/suspense/meals/requests/[^"]+/approve)"', fin_b.get("/staff/suspense").text
    )
    assert approve is not None
    assert simulator(giving).orders.by_trade_no(gift.out_trade_no).refunded_fen == 0
    done = fin_b.post(approve.group(1), data={"csrf": csrf_of(fin_b.get("/staff").text)})
    assert done.status_code == 303, done.text
    assert "SuspenseResolutionApproved (posted)" in decided(fin_b, done.headers["location"])
    assert simulator(giving).orders.by_trade_no(gift.out_trade_no).refunded_fen == suspended
    assert giving.api.get(totals).json()["suspense_fen"] == 0
