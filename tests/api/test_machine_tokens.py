"""Named machine tokens in `require`: machine:NAME with exactly its permissions, revoked ones refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.staff.domain.roles import Permission
from tests.fixtures.staff import MACHINE, StaffApp, staff_app

FEEDS_TOKEN = "clm_feeds-" + "x" * 40


@pytest.fixture
def app(tmp_path: Path) -> Iterator[StaffApp]:
    with staff_app(tmp_path) as made:
        made.store.add_machine_token("feeds", FEEDS_TOKEN, frozenset({Permission.RUN_FUNDRAISING}), 1)
        yield made


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_named_token_acts_as_its_machine_with_its_permissions(app: StaffApp) -> None:
    answer = app.client.post(
        "/api/projects/meals/close-fundraising", json={"reason": "goal reached"}, headers=bearer(FEEDS_TOKEN)
    )
    assert answer.status_code == 202, answer.text
    assert app.published.events[-1].actor == "machine:feeds"


def test_a_permission_the_token_lacks_is_refused_and_logged(app: StaffApp) -> None:
    answer = app.client.post("/api/projects/books/approve", json={}, headers=bearer(FEEDS_TOKEN))
    assert answer.status_code == 403 and "project.approve not granted" in answer.text
    assert not app.published.events
    newest = app.store.access_log(limit=1)[0]
    assert (newest.actor, newest.decision, newest.target) == (
        "machine:feeds",
        "refused",
        "POST /api/projects/books/approve",
    )


def test_a_revoked_or_unknown_token_is_refused_with_401(app: StaffApp) -> None:
    app.store.revoke_machine_token("feeds", 2)
    for token in (FEEDS_TOKEN, FEEDS_TOKEN + "y", "clm_unknown"):
        answer = app.client.post(
            "/api/projects/meals/close-fundraising", json={"reason": "goal reached"}, headers=bearer(token)
        )
        assert answer.status_code == 401, answer.text
    assert not app.published.events
    assert app.store.access_log(limit=1)[0].detail == "not logged in"


def test_the_shared_token_is_still_machine_automation(app: StaffApp) -> None:
    answer = app.client.post("/api/projects/books/approve", json={}, headers=MACHINE)
    assert answer.status_code == 202, answer.text
    assert app.published.events[-1].actor == "machine:automation"


def test_a_named_token_opens_no_console_page(app: StaffApp) -> None:
    answer = app.client.get("/staff/projects", headers=bearer(FEEDS_TOKEN), follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/staff/login"
