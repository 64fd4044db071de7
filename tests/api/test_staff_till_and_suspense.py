"""The till and money in suspense, through the console's own pages, on the real broker and both
databases: takings reach the project (or its suspense), and suspense leaves only with four eyes."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.producer import KafkaEventPublisher
from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.read.queries import LedgerQueries
from services.platform.db import make_engine
from services.staff.adapters.store import StaffStore
from services.staff.domain.roles import Role
from services.staff.hashing import hash_password
from tests.fixtures import factories as f
from tests.fixtures.ledger import RunningLedger, eventually, inputs_consumed
from tests.fixtures.staff import PASSWORD, csrf_of, log_in
from tests.ledger.test_ledger_integration import read_topic

pytestmark = pytest.mark.integration


@dataclass
class Console:
    app: object
    queries: LedgerQueries
    ledger: RunningLedger

    def browser(self, username: str) -> TestClient:
        client = TestClient(self.app)  # type: ignore[arg-type]
        assert log_in(client, username).status_code == 303
        return client

    def settled(self) -> None:
        settings = self.ledger.settings
        eventually(
            lambda: inputs_consumed(
                self.ledger.app.store.engine, settings.kafka_bootstrap, Topics(settings.topic_prefix)
            ),
            what="every input applied",
        )


@pytest.fixture
def console(ledger: RunningLedger, tmp_path: Path) -> Iterator[Console]:
    """'meals' is open, 'later' only registered; op runs hall-1; fin-a and fin-b are finance."""
    settings = ledger.settings.model_copy(update={"web_secret_path": str(tmp_path / "web.key")})
    staff = StaffStore(make_engine(settings.database_url))
    staff.add_account("ada", Role.ADMINISTRATOR, hash_password(PASSWORD), 1)
    staff.add_account("op", Role.VENUE_OPERATOR, hash_password(PASSWORD), 1, venues=frozenset({"hall-1"}))
    for name in ("fin-a", "fin-b"):
        staff.add_account(name, Role.FINANCE_OFFICER, hash_password(PASSWORD), 1)
    queries = LedgerQueries(make_engine(settings.database_url, writer=False))
    publisher = KafkaEventPublisher(settings.kafka_bootstrap, Topics(settings.topic_prefix))

    seeder = KafkaEventPublisher(settings.kafka_bootstrap, Topics(settings.topic_prefix))

    async def seed() -> None:
        for event in (*f.opened_project("meals"), f.registered("later")):
            await seeder.publish(event)

    asyncio.run(seed())
    seeder.close()
    eventually(lambda: queries.project("later") is not None, what="the projects registered")
    eventually(lambda: queries.project("meals").status == "fundraising", what="meals open")  # type: ignore[union-attr]
    app = create_app(settings, queries, publisher, {}, staff_store=staff)
    with TestClient(app):
        yield Console(app, queries, ledger)
    staff.engine.dispose()
    queries.engine.dispose()


def post_form(client: TestClient, page: str, to: str, **fields: str) -> Any:
    """Fill in a form from `page` (its CSRF token) and send it to `to`."""
    token = csrf_of(client.get(page).text)
    return client.post(to, data={"csrf": token, **fields}, follow_redirects=False)


def decided_page(client: TestClient, location: str) -> str:
    """The page a form led to, once the ledger has decided what it sent."""

    def shown() -> str | None:
        text = client.get(location).text
        return None if "Sent; the ledger has not decided yet." in text else text

    eventually(shown, what=f"the ledger's decision at {location}")
    page: str = client.get(location).text
    return page


def test_a_venue_operator_records_a_cash_box_and_a_sale_that_count_toward_the_project(
    console: Console,
) -> None:
    op = console.browser("op")
    page = op.get("/staff/till").text
    assert 'action="/staff/till/hall-1"' in page and "募捐箱清点" in page and "Charity sale" in page
    box = post_form(
        op, "/staff/till", "/staff/till/hall-1", project_id="meals", kind="cash_box", amount_yuan="320.50"
    )
    assert box.status_code == 303, box.text
    shown = decided_page(op, box.headers["location"])
    assert "OfflineDonationRecorded (posted)" in shown
    sale = post_form(
        op,
        "/staff/till",
        "/staff/till/hall-1",
        project_id="meals",
        kind="charity_sale",
        item="旧书《边城》",
        amount_yuan="12",
    )
    assert "OfflineDonationRecorded (posted)" in decided_page(op, sale.headers["location"])
    totals = console.queries.project("meals")
    assert totals is not None
    assert (totals.offline_cash_fen, totals.offline_sales_fen, totals.raised_fen) == (32050, 1200, 33250)
    assert totals.donations_count == 0  # takings are not gifts: no donation, no receipt
    # The screens' feed shows both, the sale with its item.
    settings = console.ledger.settings
    feed = Topics(settings.topic_prefix).feed

    def items() -> list[tuple[str, str | None, int]]:
        found = read_topic(settings.kafka_bootstrap, feed)
        return [(e.kind, e.item, e.amount_fen) for e in found if isinstance(e, ev.DonationFeedItem)]

    eventually(lambda: len(items()) >= 2, what="two feed items")
    assert sorted(items()) == [("cash_box", None, 32050), ("charity_sale", "旧书《边城》", 1200)]


def test_the_till_refuses_bad_input_and_other_venues_and_publishes_nothing(console: Console) -> None:
    op = console.browser("op")
    console.settled()
    before = console.queries.journal_size()

    def till(venue: str, project_id: str, kind: str, amount_yuan: str) -> Any:
        fields = {"project_id": project_id, "kind": kind, "amount_yuan": amount_yuan}
        return post_form(op, "/staff/till", f"/staff/till/{venue}", **fields)

    zero = till("hall-1", "meals", "cash_box", "0")
    assert zero.status_code == 422 and "amount_yuan" in zero.text
    no_item = till("hall-1", "meals", "charity_sale", "5")
    assert no_item.status_code == 422 and '<code class="field">item</code>' in no_item.text
    unknown = till("hall-1", "nowhere", "cash_box", "5")
    assert unknown.status_code == 422 and "unknown project" in unknown.text
    elsewhere = till("hall-2", "meals", "cash_box", "5")
    assert elsewhere.status_code == 403 and "无权访问" in elsewhere.text
    stale = op.post(
        "/staff/till/hall-1",
        data={"csrf": "0" * 64, "project_id": "meals", "kind": "cash_box", "amount_yuan": "5"},
    )
    assert stale.status_code == 403 and "表单已过期" in stale.text
    console.settled()
    assert console.queries.journal_size() == before  # nothing was published


def test_takings_for_a_closed_project_wait_in_suspense_until_two_people_redirect_them(
    console: Console,
) -> None:
    # An administrator records at any venue; 'later' is not fundraising, so the ledger books suspense.
    ada = console.browser("ada")
    box = post_form(
        ada,
        "/staff/till?venue=hall-9",
        "/staff/till/hall-9",
        project_id="later",
        kind="cash_box",
        amount_yuan="80",
    )
    assert box.status_code == 303, box.text
    assert "Booked to suspense" in decided_page(ada, box.headers["location"])
    assert console.queries.project("later").suspense_fen == 8000  # type: ignore[union-attr]

    fin_a, fin_b = console.browser("fin-a"), console.browser("fin-b")
    listing = fin_a.get("/staff/suspense").text
    assert "later" in listing and "¥80.00" in listing
    too_much = post_form(
        fin_a,
        "/staff/suspense",
        "/staff/suspense/later/requests",
        action="redirect",
        target_project_id="meals",
        amount_yuan="80.01",
        reason="counted after closing",
    )
    assert too_much.status_code == 422 and "in suspense" in too_much.text
    asked = post_form(
        fin_a,
        "/staff/suspense",
        "/staff/suspense/later/requests",
        action="redirect",
        target_project_id="meals",
        amount_yuan="80",
        reason="counted after closing",
    )
    assert asked.status_code == 303, asked.text
    assert "SuspenseResolutionRequested (recorded)" in decided_page(fin_a, asked.headers["location"])
    [request] = console.queries.suspense_resolutions("later")
    approve = f"/staff/suspense/later/requests/{request['resolution_id']}/approve"

    # The requester's own approval is refused, nothing published; the page offers them no button.
    assert approve not in fin_a.get("/staff/suspense").text
    own = post_form(fin_a, "/staff/suspense", approve)
    assert own.status_code == 409 and "may not approve their own" in own.text
    assert console.queries.project("meals").redirected_in_fen == 0  # type: ignore[union-attr]

    # A second person's approval moves the money to the open project's totals.
    assert approve in fin_b.get("/staff/suspense").text
    done = post_form(fin_b, "/staff/suspense", approve)
    assert done.status_code == 303
    assert "SuspenseResolutionApproved (posted)" in decided_page(fin_b, done.headers["location"])
    later, meals = console.queries.project("later"), console.queries.project("meals")
    assert later is not None and meals is not None
    assert later.suspense_fen == 0
    assert (meals.redirected_in_fen, meals.raised_fen, meals.fund_fen) == (8000, 8000, 8000)
    [applied] = console.queries.suspense_resolutions("later")
    assert (applied["status"], applied["requested_by"], applied["approved_by"]) == (
        "applied",
        "fin-a",
        "fin-b",
    )
    again = post_form(fin_b, "/staff", approve)
    assert again.status_code == 409
    # The screens get the target's new totals too.
    settings = console.ledger.settings
    totals_topic = Topics(settings.topic_prefix).totals

    def meals_raised() -> int:
        found = [
            e
            for e in read_topic(settings.kafka_bootstrap, totals_topic)
            if isinstance(e, ev.TotalsUpdated) and e.project_id == "meals"
        ]
        return found[-1].raised_fen if found else -1

    eventually(lambda: meals_raised() == 8000, what="meals' totals on the screens' topic")


def test_suspense_pages_refuse_the_wrong_people(console: Console) -> None:
    op = console.browser("op")
    refused = post_form(
        op,
        "/staff",
        "/staff/suspense/later/requests",
        action="redirect",
        target_project_id="meals",
        amount_yuan="1",
        reason="x",
    )
    assert refused.status_code == 403
    assert re.search(r"/staff/suspense/[^/]+/requests\"", op.get("/staff/suspense").text) is None


def test_an_approval_the_ledger_refuses_is_shown_with_its_reason(console: Console) -> None:
    ada = console.browser("ada")
    box = post_form(
        ada,
        "/staff/till?venue=hall-9",
        "/staff/till/hall-9",
        project_id="later",
        kind="cash_box",
        amount_yuan="5",
    )
    assert "Booked to suspense" in decided_page(ada, box.headers["location"])
    fin_a, fin_b = console.browser("fin-a"), console.browser("fin-b")
    asked = post_form(
        fin_a,
        "/staff/suspense",
        "/staff/suspense/later/requests",
        action="redirect",
        target_project_id="meals",
        amount_yuan="5",
        reason="counted late",
    )
    assert "SuspenseResolutionRequested (recorded)" in decided_page(fin_a, asked.headers["location"])
    # The target stops fundraising before the second person approves: the ledger says no.
    closed = post_form(
        ada, "/staff/projects/meals", "/staff/projects/meals/close-fundraising", reason="goal reached"
    )
    assert closed.status_code == 303
    eventually(lambda: console.queries.project("meals").status == "fundraising_closed", what="meals closed")  # type: ignore[union-attr]
    [request] = console.queries.suspense_resolutions("later")
    approve = f"/staff/suspense/later/requests/{request['resolution_id']}/approve"
    refused = decided_page(fin_b, post_form(fin_b, "/staff/suspense", approve).headers["location"])
    assert "The ledger refused" in refused
    assert "target project meals is fundraising_closed, not fundraising" in refused
    assert console.queries.project("later").suspense_fen == 500  # type: ignore[union-attr]
    assert console.queries.suspense_resolutions("later")[0]["status"] == "requested"
