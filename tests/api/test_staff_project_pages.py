"""The console's project pages on the real broker and both databases: a step goes to the ledger,
and the page shows what the ledger decided, its reason for a refusal included."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.producer import KafkaEventPublisher
from services.contracts.topics import Topics
from services.ledger.read.queries import LedgerQueries
from services.platform.db import make_engine
from services.staff.adapters.store import StaffStore
from services.staff.domain.roles import Role
from services.staff.hashing import hash_password
from tests.fixtures.ledger import RunningLedger, eventually
from tests.fixtures.staff import PASSWORD, csrf_of, log_in, plan_form

pytestmark = pytest.mark.integration


@pytest.fixture
def console(ledger: RunningLedger, tmp_path: Path) -> Iterator[tuple[TestClient, LedgerQueries]]:
    settings = ledger.settings.model_copy(update={"web_secret_path": str(tmp_path / "web.key")})
    staff = StaffStore(make_engine(settings.database_url))
    staff.add_account("ada", Role.ADMINISTRATOR, hash_password(PASSWORD), 1)
    staff.add_account("min", Role.PROJECT_MANAGER, hash_password(PASSWORD), 1)
    queries = LedgerQueries(make_engine(settings.database_url, writer=False))
    publisher = KafkaEventPublisher(settings.kafka_bootstrap, Topics(settings.topic_prefix))
    with TestClient(create_app(settings, queries, publisher, {}, staff_store=staff)) as client:
        yield client, queries


def step(client: TestClient, project_id: str, path: str, **fields: str) -> str:
    """Press a step's button; returns the page it leads to, once the ledger has decided."""
    page = client.get(f"/staff/projects/{project_id}").text
    answer = client.post(
        f"/staff/projects/{project_id}/{path}", data={"csrf": csrf_of(page), **fields}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    target = answer.headers["location"]
    assert re.fullmatch(rf"/staff/projects/{project_id}\?sent=[0-9a-f-]{{36}}", target)

    def decided() -> str | None:
        shown = client.get(target).text
        return None if "Sent; the ledger has not decided yet." in shown else shown

    eventually(decided, what=f"the ledger's decision on {path}")
    return str(client.get(target).text)


def decided(page: str) -> list[str]:
    """What the page says the ledger recorded for the step just taken."""
    assert "The ledger recorded" in page
    return re.findall(r'<span class="decided">([^<]+)</span>', page)


def refusal(page: str) -> str:
    """The reason the page shows for the ledger's refusal of the step just taken."""
    assert "The ledger refused this step" in page
    [reason] = re.findall(r'<span class="reason">([^<]+)</span>', page)
    return str(reason)


def administrator(client: TestClient) -> TestClient:
    """A second browser on the same console, where the administrator is logged in."""
    admin = TestClient(client.app)
    log_in(admin, "ada")
    return admin


def test_a_manager_and_an_administrator_take_a_project_through_its_steps(
    console: tuple[TestClient, LedgerQueries],
) -> None:
    client, queries = console
    log_in(client, "min")
    form = client.get("/staff/projects/new").text
    sent = client.post("/staff/projects", data={"csrf": csrf_of(form), **plan_form("garden")})
    assert "the ledger has not decided yet" in sent.text or decided(sent.text) == ["ProjectRegistered"]
    eventually(lambda: queries.project("garden") is not None, what="registration applied")
    assert queries.project("garden").goal_fen == 1_000_050  # type: ignore[union-attr]
    page = client.get("/staff/projects/garden").text
    # The manager registered it, so runs it; approving is the administrator's.
    assert "/staff/projects/garden/open-fundraising" in page and "/garden/approve" not in page

    # Opening before approval is illegal: the ledger says so, and the page shows its reason.
    reason = refusal(step(client, "garden", "open-fundraising"))
    [entry] = [e for e in queries.project_entries("garden", ["FundraisingOpened"])]
    assert entry.record["decision"] == "rejected" and reason == entry.record["reason"]

    admin = administrator(client)
    assert decided(step(admin, "garden", "approve")) == ["ProjectApproved"]
    assert decided(step(client, "garden", "open-fundraising")) == ["FundraisingOpened"]
    assert decided(step(client, "garden", "close-fundraising", reason="目标达成 goal reached")) == [
        "FundraisingClosed"
    ]
    project = queries.project("garden")
    assert project is not None and str(project.status) == "fundraising_closed"
    # Every step is journaled under the person who took it.
    actors = [(e.record["kind"], e.record["body"]["actor"]) for e in queries.project_entries("garden")]
    assert actors == [
        ("ProjectRegistered", "min"),
        ("FundraisingOpened", "min"),
        ("ProjectApproved", "ada"),
        ("FundraisingOpened", "min"),
        ("FundraisingClosed", "min"),
    ]
    listed = client.get("/staff/projects").text
    assert "/staff/projects/garden" in listed and "fundraising_closed" in listed


def test_reports_corrections_suspension_resumption_and_closure_go_through_the_ledger(
    console: tuple[TestClient, LedgerQueries],
) -> None:
    client, queries = console
    log_in(client, "min")
    form = client.get("/staff/projects/new").text
    plan = {**plan_form("orchard"), "area": "江苏省苏州市 Suzhou", "filing_no": "53320500-2026-0007"}
    client.post("/staff/projects", data={"csrf": csrf_of(form), **plan})
    eventually(lambda: queries.project("orchard") is not None, what="registration applied")
    admin = administrator(client)
    for by, path, kind in [
        (admin, "approve", "ProjectApproved"),
        (client, "open-fundraising", "FundraisingOpened"),
    ]:
        assert decided(step(by, "orchard", path)) == [kind]

    # The manager reports, then corrects the report: both are disclosed, neither edited away.
    assert decided(step(client, "orchard", "report-progress", summary="种下 40 棵果树")) == [
        "ProgressReported"
    ]
    [report] = queries.project_entries("orchard", ["ProgressReported"])
    corrected = step(
        client,
        "orchard",
        "publish-correction",
        corrects_event_id=report.record["entry_id"],
        note="应为 45 棵",
    )
    assert decided(corrected) == ["CorrectionPublished"]
    public = client.get("/projects/orchard").text
    assert "种下 40 棵果树" in public and "应为 45 棵" in public
    assert "江苏省苏州市 Suzhou" in public and "53320500-2026-0007" in public
    console_page = client.get("/staff/projects/orchard").text
    assert '<dd class="area">江苏省苏州市 Suzhou</dd>' in console_page
    assert '<dd class="filing">53320500-2026-0007</dd>' in console_page

    # Suspended while fundraising, resumed into fundraising; a second resumption is the ledger's to refuse.
    assert decided(step(admin, "orchard", "suspend", reason="审计 audit")) == ["ProjectSuspended"]
    assert str(queries.project("orchard").status) == "suspended"  # type: ignore[union-attr]
    assert decided(step(admin, "orchard", "resume", reason="审计通过")) == ["ProjectResumed"]
    assert str(queries.project("orchard").status) == "fundraising"  # type: ignore[union-attr]
    reason = refusal(step(admin, "orchard", "resume", reason="again"))
    assert reason == "ProjectResumed is not allowed in state fundraising"

    # Closing while still fundraising is refused by the ledger, with its reason; then it closes.
    reason = refusal(step(admin, "orchard", "close", leftover_disposition="none"))
    assert reason == "ProjectClosed is not allowed in state fundraising"
    assert decided(step(client, "orchard", "close-fundraising", reason="季末")) == ["FundraisingClosed"]
    assert decided(step(admin, "orchard", "close", leftover_disposition="none")) == ["ProjectClosed"]
    assert str(queries.project("orchard").status) == "closed"  # type: ignore[union-attr]
    kinds = [
        (e.record["kind"], e.record["decision"], e.record["body"]["actor"])
        for e in queries.project_entries("orchard")
    ]
    assert kinds[3:] == [
        ("ProgressReported", "recorded", "min"),
        ("CorrectionPublished", "recorded", "min"),
        ("ProjectSuspended", "recorded", "ada"),
        ("ProjectResumed", "recorded", "ada"),
        ("ProjectResumed", "rejected", "ada"),
        ("ProjectClosed", "rejected", "ada"),
        ("FundraisingClosed", "recorded", "min"),
        ("ProjectClosed", "recorded", "ada"),
    ]
