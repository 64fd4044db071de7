"""Disbursements through the console's own endpoints on the real broker and ledger, on SQLite and
PostgreSQL: above the threshold two different approvers, the funds held at the second; an approval
beyond the available balance refused by the ledger and that refusal on the page; paid; evidence."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.producer import KafkaEventPublisher
from services.contracts import events as ev
from services.contracts.topics import Topics
from services.ledger.read.queries import LedgerQueries
from services.platform.db import make_engine
from services.platform.settings import Settings
from services.staff.adapters.store import StaffStore
from services.staff.domain.roles import Role
from services.staff.hashing import hash_password
from tests.fixtures import factories as f
from tests.fixtures.ledger import eventually, ledger_settings, start_ledger, stop_ledger
from tests.fixtures.staff import PASSWORD, csrf_of, log_in

pytestmark = pytest.mark.integration

THRESHOLD = 100_000  # ¥1,000: from here up, two approvers
PDF = b"%PDF-1.4\n% quote\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 32


@dataclass
class Console:
    app: object
    queries: LedgerQueries
    settings: Settings

    def person(self, username: str) -> TestClient:
        client = TestClient(self.app)  # type: ignore[arg-type]
        assert log_in(client, username).status_code == 303
        return client


def publish(settings: Settings, *events: ev.Event) -> None:
    async def send() -> None:
        publisher = KafkaEventPublisher(settings.kafka_bootstrap, Topics(settings.topic_prefix))
        try:
            for event in events:
                await publisher.publish(event)
        finally:
            publisher.close()

    asyncio.run(send())


@pytest.fixture
def console(kafka_bootstrap: str, topics: Topics, db_url: str, tmp_path: Path) -> Iterator[Console]:
    settings = ledger_settings(
        kafka_bootstrap,
        topics,
        db_url,
        disbursement_dual_approval_fen=THRESHOLD,
        web_secret_path=str(tmp_path / "web.key"),
        documents_dir=str(tmp_path / "documents"),
    )
    ledger = start_ledger(settings)
    try:
        staff = StaffStore(make_engine(db_url))
        for username, role in [("min", Role.PROJECT_MANAGER), ("fin", Role.FINANCE_OFFICER)]:
            staff.add_account(username, role, hash_password(PASSWORD), 1)
        staff.add_account("fin2", Role.FINANCE_OFFICER, hash_password(PASSWORD), 1)
        staff.assign("min", project_id="well")
        queries = LedgerQueries(make_engine(db_url, writer=False))
        publish(settings, *f.opened_project("well"), f.confirmed("well", 300_000, 0))
        eventually(
            lambda: (p := queries.project("well")) is not None and p.fund_fen == 300_000,
            what="the project open with ¥3,000 available",
        )
        publisher = KafkaEventPublisher(settings.kafka_bootstrap, Topics(settings.topic_prefix))
        with TestClient(create_app(settings, queries, publisher, {}, staff_store=staff)) as client:
            yield Console(client.app, queries, settings)
    finally:
        stop_ledger(ledger)


def decided(client: TestClient, location: str) -> str:
    """The page a step leads to, once the ledger has decided the step."""

    def shown() -> str | None:
        page = client.get(location).text
        return None if "Sent; the ledger has not decided yet." in page else page

    eventually(shown, what=f"the ledger's decision shown at {location}")
    return client.get(location).text


def request(client: TestClient, yuan: str) -> tuple[str, str]:
    """Request a disbursement with a PDF; the disbursement's id and its page once decided."""
    token = csrf_of(client.get("/staff/projects/well/disbursements/new").text)
    answer = client.post(
        "/staff/projects/well/disbursements",
        data={
            "csrf": token,
            "payee": "清泉村委会 Qingquan village committee",
            "purpose": "打井 a well",
            "amount_yuan": yuan,
            "planned_on": "2026-12-28",
        },
        files={"documents": ("报价单.pdf", PDF, "application/pdf")},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    found = re.fullmatch(
        r"/staff/projects/well/disbursements/([0-9a-f-]{36})\?sent=.+", answer.headers["location"]
    )
    assert found is not None
    return found.group(1), decided(client, answer.headers["location"])


def press(client: TestClient, disbursement_id: str, step: str, **fields: str) -> str:
    path = f"/staff/projects/well/disbursements/{disbursement_id}"
    answer = client.post(
        f"{path}/{step}", data={"csrf": csrf_of(client.get(path).text), **fields}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return decided(client, answer.headers["location"])


def test_two_approvers_above_the_threshold_the_ledgers_refusal_shown_paid_and_evidenced(
    console: Console,
) -> None:
    min_, fin, fin2 = console.person("min"), console.person("fin"), console.person("fin2")
    well, page = request(min_, "2000.00")
    assert "The ledger recorded" in page and "needs 2 approvals, 0 given" in page

    page = press(fin, well, "approve", comment="报价合理 the quote is fair")
    assert "approval 1 of 2" in page and "needs 2 approvals, 1 given" in page
    # The same person again: refused before anything is sent.
    path = f"/staff/projects/well/disbursements/{well}"
    again = fin.post(f"{path}/approve", data={"csrf": csrf_of(fin.get(path).text)}, follow_redirects=False)
    assert again.status_code == 409 and "you have already approved this disbursement" in again.text

    page = press(fin2, well, "approve")
    assert '<strong class="state">held</strong>' in page and "needs 2 approvals, 2 given" in page
    project = console.queries.project("well")
    assert project is not None and (project.fund_fen, project.held_fen) == (100_000, 200_000)

    # ¥5,000 asked with ¥1,000 left: the second approval is refused by the ledger, and the page says so.
    big, _ = request(min_, "5000")
    press(fin, big, "approve")
    refused = press(fin2, big, "approve")
    assert "The ledger refused this step" in refused
    [reason] = re.findall(r'<span class="reason">([^<]+)</span>', refused)
    assert reason == "available balance 100000 fen does not cover 500000 fen"
    [entry] = [
        e.record
        for e in console.queries.project_entries("well", ["DisbursementApproved"])
        if e.record["body"]["actor"] == "fin2" and e.record["body"]["disbursement_id"] == big
    ]
    assert (entry["decision"], entry["reason"]) == ("rejected", reason)

    # The ledger holds four eyes too: an approval by the requester that bypassed the console.
    publish(console.settings, f.disbursement(ev.DisbursementApproved, "well", big, "min"))
    eventually(
        lambda: (
            "an approver may not approve their own request"
            in min_.get(f"/staff/projects/well/disbursements/{big}").text
        ),
        what="the ledger's refusal of the requester's own approval shown",
    )

    page = press(fin, well, "pay", payout_ref="ICBC-20261228-0042")
    assert '<strong class="state">paid</strong>' in page and "ICBC-20261228-0042" in page
    project = console.queries.project("well")
    assert project is not None and (project.held_fen, project.disbursed_fen) == (0, 200_000)

    form = min_.get(path).text
    answer = min_.post(
        f"{path}/evidence",
        data={"csrf": csrf_of(form), "description": "受益人签收单 beneficiary sign-off"},
        files={"document": ("签收.png", PNG, "image/png")},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    page = decided(min_, answer.headers["location"])
    sha = hashlib.sha256(PNG).hexdigest()
    assert f"SHA-256 {sha}" in page and f"/staff/projects/well/documents/{sha}" in page
    assert fin.get(f"/staff/projects/well/documents/{sha}").content == PNG
    actors = [
        (e.record["kind"], e.record["body"]["actor"], e.record["decision"])
        for e in console.queries.project_entries("well", ["DisbursementPaid", "EvidenceAttached"])
    ]
    assert actors == [("DisbursementPaid", "fin", "posted"), ("EvidenceAttached", "min", "recorded")]
