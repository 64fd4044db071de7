"""The actor of a staff action is the logged-in person, or the named machine client; never the body's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
from tests.api.test_end_to_end import project_body
from tests.fixtures.ledger import RunningLedger, eventually
from tests.fixtures.staff import MACHINE, PASSWORD, StaffApp, log_in, staff_app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[StaffApp]:
    with staff_app(tmp_path) as made:
        made.add("ada", Role.ADMINISTRATOR)
        made.add("min", Role.PROJECT_MANAGER, projects=frozenset({"meals"}))
        yield made


def test_events_carry_the_person_of_the_session(app: StaffApp) -> None:
    log_in(app.client, "min")
    assert (
        app.client.post("/api/projects/meals/close-fundraising", json={"reason": "goal reached"}).status_code
        == 202
    )
    [closed] = app.published.events
    assert isinstance(closed, ev.FundraisingClosed) and closed.actor == "min"


def test_a_session_wins_over_a_token_sent_with_it(app: StaffApp) -> None:
    """A person's requests are theirs even if a machine token rides along: they cannot pose as one."""
    log_in(app.client, "min")
    answer = app.client.post("/api/projects/meals/approve", headers=MACHINE)
    assert answer.status_code == 403 and app.published.events == []


def test_the_machine_token_acts_as_machine_automation(app: StaffApp) -> None:
    assert app.client.post("/api/projects/books/approve", headers=MACHINE).status_code == 202
    [approved] = app.published.events
    assert approved.actor == "machine:automation"


def test_an_actor_in_the_body_is_refused_not_believed(app: StaffApp) -> None:
    log_in(app.client, "ada")
    answer = app.client.post("/api/projects", json={**project_body("new"), "actor": "someone-else"})
    assert answer.status_code == 422 and app.published.events == []


def test_a_manager_who_registers_a_project_runs_it(app: StaffApp) -> None:
    log_in(app.client, "min")
    assert app.client.post("/api/projects", json=project_body("garden")).status_code == 202
    [registered] = app.published.events
    assert registered.actor == "min"
    account = app.store.account("min")
    assert account is not None and account.person.projects == {"meals", "garden"}


@pytest.mark.integration
def test_the_ledger_journals_the_persons_username_as_the_actor(ledger: RunningLedger, tmp_path: Path) -> None:
    """On the real broker, both databases: the journal entry of an approval names who approved."""
    settings = ledger.settings.model_copy(update={"web_secret_path": str(tmp_path / "web.key")})
    engine = make_engine(settings.database_url, writer=False)
    staff = StaffStore(make_engine(settings.database_url))
    staff.add_account("ada", Role.ADMINISTRATOR, hash_password(PASSWORD), 1)
    publisher = KafkaEventPublisher(settings.kafka_bootstrap, Topics(settings.topic_prefix))
    queries = LedgerQueries(engine)
    with TestClient(create_app(settings, queries, publisher, {}, staff_store=staff)) as client:
        assert log_in(client, "ada").status_code == 303
        assert client.post("/api/projects", json=project_body("meals")).status_code == 202
        eventually(lambda: queries.project("meals") is not None, what="registration applied")
        approval = client.post("/api/projects/meals/approve")
        assert approval.status_code == 202
        eventually(lambda: queries.entry(approval.json()["event_id"]) is not None, what="approval journaled")
    entry = queries.entry(approval.json()["event_id"])
    assert entry is not None and entry["body"]["actor"] == "ada"
    registered = queries.entry(ev.derived_id("registered", "meals"))
    assert registered is not None and registered["body"]["actor"] == "ada"
    assert queries.project("meals").status == "approved"  # type: ignore[union-attr]
