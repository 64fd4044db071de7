"""A project's later steps in the console and the JSON API, against a recording publisher: who may
take them, what they publish (the actor from the session), and bad input refused with nothing
published. What the ledger then decides is tests/api/test_staff_project_pages.py's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.contracts import events as ev
from services.staff.domain.roles import Role
from tests.fixtures.staff import StaffApp, csrf_of, log_in, staff_app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[StaffApp]:
    """'meals' is fundraising and run by the manager 'min'; 'books' is only registered."""
    with staff_app(tmp_path) as made:
        made.add("ada", Role.ADMINISTRATOR)
        made.add("min", Role.PROJECT_MANAGER, projects=frozenset({"meals"}))
        yield made


def entry_id(app: StaffApp, project_id: str) -> str:
    queries = app.client.app.state.queries  # type: ignore[attr-defined]
    return str(queries.project_entries(project_id)[0].record["entry_id"])


def press(app: StaffApp, who: str, project_id: str, step: str, **fields: str) -> httpx.Response:
    """As `who`, open the project's page and send one step's form."""
    log_in(app.client, who)
    page = app.client.get(f"/staff/projects/{project_id}")
    assert page.status_code == 200
    answer: httpx.Response = app.client.post(
        f"/staff/projects/{project_id}/{step}",
        data={"csrf": csrf_of(page.text), **fields},
        follow_redirects=False,
    )
    return answer


def shown_problems(answer: httpx.Response) -> list[str]:
    return re.findall(r'<code class="field">([^<]+)</code>', answer.text)


def the_one_published(app: StaffApp, answer: httpx.Response) -> ev.Event:
    assert answer.status_code == 303, answer.text
    [event] = app.published.events
    assert answer.headers["location"] == f"/staff/projects/{event.project_id}?sent={event.event_id}"
    return event


def test_a_manager_publishes_a_progress_report_under_their_own_name(app: StaffApp) -> None:
    # A field naming someone else is no part of the form: the actor is the session's.
    answer = press(
        app, "min", "meals", "report-progress", summary="  已送餐 1200 份 1200 meals  ", actor="ada"
    )
    event = the_one_published(app, answer)
    assert isinstance(event, ev.ProgressReported)
    assert (event.project_id, event.actor, event.summary) == ("meals", "min", "已送餐 1200 份 1200 meals")


def test_a_correction_names_an_event_of_the_projects_journal(app: StaffApp) -> None:
    corrected = entry_id(app, "meals")
    answer = press(
        app, "min", "meals", "publish-correction", corrects_event_id=corrected, note="金额应为 ¥12"
    )
    event = the_one_published(app, answer)
    assert isinstance(event, ev.CorrectionPublished)
    assert (event.corrects_event_id, event.note, event.actor) == (corrected, "金额应为 ¥12", "min")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"corrects_event_id": "BOOKS", "note": "x"}, "corrects_event_id"),  # another project's event
        ({"corrects_event_id": "00000000-0000-4000-8000-000000000000", "note": "x"}, "corrects_event_id"),
        ({"corrects_event_id": "not-a-uuid", "note": "x"}, "corrects_event_id"),
        ({"corrects_event_id": "MEALS", "note": ""}, "note"),
        ({"corrects_event_id": "MEALS", "note": "bad\u202etext"}, "note"),
    ],
)
def test_a_bad_correction_is_shown_again_naming_the_field_and_nothing_is_published(
    app: StaffApp, fields: dict[str, str], field: str
) -> None:
    ids = {"BOOKS": entry_id(app, "books"), "MEALS": entry_id(app, "meals")}
    sent = {k: ids.get(v, v) for k, v in fields.items()}
    answer = press(app, "min", "meals", "publish-correction", **sent)
    assert answer.status_code == 422
    assert field in shown_problems(answer)
    assert app.published.events == []
    # What was typed is there again, in the form that was sent, which is open.
    assert '<details class="step" open>' in answer.text
    if sent["note"]:
        assert sent["note"] in answer.text


def test_suspending_and_resuming_are_the_administrators_with_a_reason(app: StaffApp) -> None:
    refused = press(app, "min", "meals", "suspend", reason="审计")
    assert refused.status_code == 403 and app.published.events == []
    suspended = the_one_published(app, press(app, "ada", "meals", "suspend", reason="审计 audit"))
    assert isinstance(suspended, ev.ProjectSuspended)
    assert (suspended.reason, suspended.actor) == ("审计 audit", "ada")
    app.published.events.clear()
    resumed = the_one_published(app, press(app, "ada", "meals", "resume", reason="审计通过"))
    assert isinstance(resumed, ev.ProjectResumed) and resumed.reason == "审计通过"


@pytest.mark.parametrize("step", ["suspend", "resume"])
@pytest.mark.parametrize("reason", ["", "   ", "x" * 201, "a\x1bb"])
def test_a_suspension_or_resumption_without_a_plain_reason_is_refused(
    app: StaffApp, step: str, reason: str
) -> None:
    answer = press(app, "ada", "meals", step, reason=reason)
    assert answer.status_code == 422 and "reason" in shown_problems(answer)
    assert app.published.events == []


def test_closing_offers_the_ledgers_dispositions_and_the_projects_open_for_fundraising(app: StaffApp) -> None:
    log_in(app.client, "ada")
    page = app.client.get("/staff/projects/books").text
    disposition_select, target_select = page.split('name="leftover_disposition"')[1].split(
        'name="leftover_target_project_id"'
    )
    dispositions = re.findall(r'<option value="([a-z_]+)"', disposition_select)
    assert dispositions == ["none", "return_to_donors", "transfer_to_project"]
    targets = re.findall(r'<option value="([a-z0-9-]+)"', target_select)
    assert targets == ["meals"]  # fundraising; books itself and unopened projects are not offered
    # The manager runs meals but may not close it: no closing form for them.
    log_in(app.client, "min")
    assert 'action="/staff/projects/meals/close"' not in app.client.get("/staff/projects/meals").text


def test_a_project_closes_with_its_leftover_transferred_to_an_open_project(app: StaffApp) -> None:
    answer = press(
        app,
        "ada",
        "books",
        "close",
        leftover_disposition="transfer_to_project",
        leftover_target_project_id="meals",
    )
    event = the_one_published(app, answer)
    assert isinstance(event, ev.ProjectClosed)
    assert (event.leftover_disposition, event.leftover_target_project_id, event.actor) == (
        "transfer_to_project",
        "meals",
        "ada",
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"leftover_disposition": "burn_it"}, "leftover_disposition"),
        ({"leftover_disposition": "transfer_to_project"}, "leftover_target_project_id"),
        (
            {"leftover_disposition": "transfer_to_project", "leftover_target_project_id": "books"},
            "leftover_target_project_id",
        ),
        (
            {"leftover_disposition": "transfer_to_project", "leftover_target_project_id": "meals"},
            "leftover_target_project_id",
        ),
        (
            {"leftover_disposition": "return_to_donors", "leftover_target_project_id": "books"},
            "leftover_target_project_id",
        ),
    ],
)
def test_a_bad_closure_is_refused_naming_the_field(app: StaffApp, fields: dict[str, str], field: str) -> None:
    # Closing meals: transferring to itself, or to books (not fundraising), is refused.
    answer = press(app, "ada", "meals", "close", **fields)
    assert answer.status_code == 422 and field in shown_problems(answer)
    assert app.published.events == []


@pytest.mark.parametrize(
    ("step", "fields"),
    [
        ("report-progress", {"summary": "x"}),
        ("suspend", {"reason": "x"}),
        ("resume", {"reason": "x"}),
        ("close", {"leftover_disposition": "none"}),
    ],
)
def test_a_stale_form_is_refused_and_nothing_is_published(
    app: StaffApp, step: str, fields: dict[str, str]
) -> None:
    log_in(app.client, "ada")
    answer = app.client.post(f"/staff/projects/meals/{step}", data={"csrf": "0" * 64, **fields})
    assert answer.status_code == 403
    assert app.published.events == []


def test_the_json_api_takes_the_same_steps_and_refuses_the_same_input(app: StaffApp) -> None:
    log_in(app.client, "ada")
    api = app.client
    accepted = api.post("/api/projects/meals/suspend", json={"reason": "审计"})
    assert accepted.status_code == 202 and accepted.json()["event"] == "ProjectSuspended"
    # An actor in the body is refused: who acts is the session's.
    assert api.post("/api/projects/meals/resume", json={"reason": "x", "actor": "min"}).status_code == 422
    # A rule across the body's fields is a 422; naming what the ledger does not hold, a 409.
    bad = api.post("/api/projects/meals/close", json={"leftover_disposition": "transfer_to_project"})
    assert bad.status_code == 422 and "needs leftover_target_project_id" in bad.json()["detail"]
    closed_into = {"leftover_disposition": "transfer_to_project", "leftover_target_project_id": "books"}
    unopened = api.post("/api/projects/meals/close", json=closed_into)
    assert unopened.status_code == 409
    assert unopened.json()["problems"] == [
        {"field": "leftover_target_project_id", "problem": "project 'books' is not open for fundraising"}
    ]
    wrong = api.post(
        "/api/projects/meals/publish-correction",
        json={"corrects_event_id": entry_id(app, "books"), "note": "x"},
    )
    assert wrong.status_code == 409 and wrong.json()["problems"][0]["field"] == "corrects_event_id"
    assert api.post("/api/projects/nowhere/report-progress", json={"summary": "x"}).status_code == 404
    assert [type(e).__name__ for e in app.published.events] == ["ProjectSuspended"]
    assert app.published.events[0].actor == "ada"
    log_in(api, "min")
    assert api.post("/api/projects/books/report-progress", json={"summary": "x"}).status_code == 403
    assert api.post("/api/projects/meals/report-progress", json={"summary": "进展"}).status_code == 202
