"""The console's registration form: a whole plan becomes one ProjectRegistered; a bad one is shown
again, field by field, with nothing published."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.contracts import events as ev
from services.staff.domain.roles import Role
from tests.fixtures.staff import StaffApp, csrf_of, log_in, plan_form, staff_app


@pytest.fixture
def app(tmp_path: Path) -> Iterator[StaffApp]:
    with staff_app(tmp_path) as made:
        made.add("min", Role.PROJECT_MANAGER)
        log_in(made.client, "min")
        yield made


def submit(app: StaffApp, **fields: str) -> httpx.Response:
    token = csrf_of(app.client.get("/staff/projects/new").text)
    answer: httpx.Response = app.client.post(
        "/staff/projects", data={"csrf": token, **fields}, follow_redirects=False
    )
    return answer


def test_a_plan_is_registered_by_the_person_in_fen_and_basis_points(app: StaffApp) -> None:
    answer = submit(app, **plan_form("garden"))
    assert answer.status_code == 303
    [registered] = app.published.events
    assert isinstance(registered, ev.ProjectRegistered)
    assert (registered.project_id, registered.actor) == ("garden", "min")
    assert (registered.goal_fen, registered.cost_cap_bp) == (1_000_050, 800)
    assert answer.headers["location"] == f"/staff/projects/garden?sent={registered.event_id}"
    account = app.store.account("min")
    assert account is not None and "garden" in account.person.projects


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"goal_yuan": "12.345"}, "goal_yuan"),
        ({"goal_yuan": "-5"}, "goal_yuan"),
        ({"cost_cap_percent": "150"}, "cost_cap_percent"),
        ({"name": ""}, "name"),
        ({"project_id": "has space"}, "project_id"),
        ({"starts_on": "2026-12-31", "ends_on": "2026-01-01"}, "plan"),
        ({"purpose": "bad\u202etext"}, "purpose"),
    ],
)
def test_a_bad_plan_is_shown_again_naming_the_field_and_nothing_is_published(
    app: StaffApp, changes: dict[str, str], field: str
) -> None:
    answer = submit(app, **{**plan_form("garden"), **changes})
    assert answer.status_code == 422
    shown = re.findall(r'<code class="field">([^<]+)</code>', answer.text)
    assert field in shown
    assert 'value="乐龄助餐"' in answer.text or changes.get("name") == ""
    assert app.published.events == []


def test_a_registered_id_is_a_conflict_and_a_stale_form_is_refused(app: StaffApp) -> None:
    assert submit(app, **plan_form("meals")).status_code == 409
    stale = app.client.post("/staff/projects", data={"csrf": "0" * 64, **plan_form("garden")})
    assert stale.status_code == 403
    assert app.published.events == []


def test_the_area_and_filing_number_go_into_the_plan_and_blank_ones_are_left_out(app: StaffApp) -> None:
    filed = submit(app, **plan_form("garden"), area="苏州工业园区 SIP", filing_no="53320500-2026-0007")
    blank = submit(app, **plan_form("orchard"), area=" ", filing_no="")
    assert (filed.status_code, blank.status_code) == (303, 303)
    garden, orchard = app.published.events
    assert isinstance(garden, ev.ProjectRegistered) and isinstance(orchard, ev.ProjectRegistered)
    assert (garden.area, garden.filing_no) == ("苏州工业园区 SIP", "53320500-2026-0007")
    assert (orchard.area, orchard.filing_no) == (None, None)
    too_long = submit(app, **plan_form("grove"), filing_no="x" * 201)
    assert too_long.status_code == 422
    assert "filing_no" in re.findall(r'<code class="field">([^<]+)</code>', too_long.text)
    assert len(app.published.events) == 2
