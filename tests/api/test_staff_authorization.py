"""The authorization matrix: every staff route × every role, a machine client and nobody.

Staff routes are found in the app's own OpenAPI document (every path under
/staff, every operation that takes credentials), so a route added without an
entry in MATRIX fails the first test. Refused means 403 for a person (logged),
401 from the API for nobody, and the log-in page (303) for a page.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services.api import routes as api_routes
from services.staff.domain.roles import Role
from tests.api.test_end_to_end import project_body
from tests.fixtures.staff import MACHINE, StaffApp, csrf_of, log_in, plan_form, staff_app

ADMIN, MANAGER, FINANCE, AUDITOR, OPERATOR = (
    "administrator",
    "project_manager",
    "finance_officer",
    "auditor",
    "venue_operator",
)
PEOPLE = (ADMIN, MANAGER, FINANCE, AUDITOR, OPERATOR)
MACHINE_CLIENT, NOBODY = "machine:automation", "nobody"
EVERYONE = frozenset({*PEOPLE, MACHINE_CLIENT, NOBODY})
STAFF = frozenset(PEOPLE)

# (method, path) → who is let through. The manager runs 'meals', not 'books'.
MATRIX: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/staff/login"): EVERYONE,
    ("POST", "/staff/login"): EVERYONE,
    ("POST", "/staff/logout"): EVERYONE,
    ("GET", "/staff"): STAFF,
    ("GET", "/staff/access-log"): frozenset({ADMIN, AUDITOR}),
    ("GET", "/staff/projects"): STAFF,
    ("GET", "/staff/projects/new"): frozenset({ADMIN, MANAGER}),
    ("POST", "/staff/projects"): frozenset({ADMIN, MANAGER}),
    ("GET", "/staff/projects/{project_id}"): STAFF,
    ("POST", "/staff/projects/{project_id}/approve"): frozenset({ADMIN}),
    ("POST", "/staff/projects/{project_id}/open-fundraising"): frozenset({ADMIN, MANAGER}),
    ("POST", "/staff/projects/{project_id}/close-fundraising"): frozenset({ADMIN, MANAGER}),
    ("POST", "/api/projects"): frozenset({ADMIN, MANAGER, MACHINE_CLIENT}),
    ("POST", "/api/projects/{project_id}/approve"): frozenset({ADMIN, MACHINE_CLIENT}),
    ("POST", "/api/projects/{project_id}/open-fundraising"): frozenset({ADMIN, MANAGER, MACHINE_CLIENT}),
    ("POST", "/api/projects/{project_id}/close-fundraising"): frozenset({ADMIN, MANAGER, MACHINE_CLIENT}),
}
# What the routes open to everyone answer: the form; a wrong password; logged out.
PUBLIC_ANSWERS = {
    ("GET", "/staff/login"): 200,
    ("POST", "/staff/login"): 401,
    ("POST", "/staff/logout"): 303,
}
# Answer 401 but are nobody's staff route: the provider signs its notifications.
NOT_STAFF = {("POST", "/api/payments/wechatpay/notify")}
# Object-level checks: the same routes on a project the manager does not run.
OTHER_PROJECT = {
    path: who - {MANAGER}
    for (method, path), who in MATRIX.items()
    if method == "POST" and "{project_id}" in path
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StaffApp]:
    with staff_app(tmp_path_factory.mktemp("matrix")) as made:
        for role in Role:
            scopes: dict[str, Any] = {}
            if role is Role.PROJECT_MANAGER:
                scopes["projects"] = frozenset({"meals"})
            if role is Role.VENUE_OPERATOR:
                scopes["venues"] = frozenset({"hall-1"})
            made.add(role.value.replace("_", "-"), role, **scopes)
        yield made


def routes_of_every_router() -> set[tuple[str, str]]:
    """Every route of every router module under services/api/routes, shown in the OpenAPI document
    or not: a new module or route is seen without anyone listing it here."""
    found: set[tuple[str, str]] = set()
    for info in pkgutil.iter_modules(api_routes.__path__):
        router = getattr(importlib.import_module(f"{api_routes.__name__}.{info.name}"), "router", None)
        for route in getattr(router, "routes", ()):
            if isinstance(route, APIRoute):
                found |= {(method, route.path) for method in route.methods or ()}
    return found


def staff_operations(api: FastAPI) -> set[tuple[str, str]]:
    """Every route a person or a machine client needs rights for: the console's pages (kept out
    of the OpenAPI document: they are forms for people) and the API's guarded operations."""
    pages = {
        (m, path) for m, path in routes_of_every_router() if path == "/staff" or path.startswith("/staff/")
    }
    guarded = {
        (method.upper(), path)
        for path, operations in api.openapi()["paths"].items()
        for method, operation in operations.items()
        if "security" in operation or "401" in operation["responses"]
    }
    return (pages | guarded) - NOT_STAFF


def test_every_staff_route_has_an_entry(app: StaffApp) -> None:
    assert staff_operations(app.client.app) == set(MATRIX)  # type: ignore[arg-type]


def ask(app: StaffApp, who: str, method: str, path: str) -> Any:
    """One request as `who`, with a fresh browser (cookie jar) each time."""
    client = TestClient(app.client.app)
    headers = {}
    if who in PEOPLE:
        assert log_in(client, who.replace("_", "-")).status_code == 303
    elif who == MACHINE_CLIENT:
        headers = MACHINE
    body: dict[str, Any] = {}
    if path == "/api/projects":
        body = {"json": project_body(f"new-{who}".replace("_", "-"))}
    elif (method, path) == ("POST", "/staff/projects"):
        token = csrf_of(client.get("/staff/login").text)
        body = {"data": {"csrf": token, **plan_form(f"form-{who}".replace("_", "-"))}}
    elif method == "POST" and path.startswith("/staff"):
        # A genuine form, so what answers is the route, not the CSRF check.
        token = csrf_of(client.get("/staff/login").text)
        body = {"data": {"csrf": token, "username": "nobody", "password": "not a password at all"}}
    elif path.endswith("close-fundraising"):
        body = {"json": {"reason": "goal reached"}}
    return client.request(method, path, headers=headers, follow_redirects=False, **body)


def refused(who: str, path: str, answer: Any) -> bool:
    if who == NOBODY or (who == MACHINE_CLIENT and path.startswith("/staff")):
        if path.startswith("/staff"):
            return answer.status_code == 303 and answer.headers["location"] == "/staff/login"
        return answer.status_code == 401
    return answer.status_code == 403


def done(path: str, answer: Any) -> bool:
    """Served: a page, an accepted event, or a console step's redirect to the project's page."""
    if answer.status_code == 303:
        return (
            re.fullmatch(r"/staff/projects/[^/?]+\?sent=[0-9a-f-]{36}", answer.headers["location"])
            is not None
        )
    return answer.status_code in (200, 202)


@pytest.mark.parametrize("who", sorted(EVERYONE))
@pytest.mark.parametrize(("method", "template"), sorted(MATRIX))
def test_the_matrix(app: StaffApp, who: str, method: str, template: str) -> None:
    path = template.replace("{project_id}", "meals")
    answer = ask(app, who, method, path)
    assert answer.status_code < 500, answer.text
    if MATRIX[(method, template)] == EVERYONE:
        assert answer.status_code == PUBLIC_ANSWERS[(method, template)], (who, path, answer.text)
    elif who in MATRIX[(method, template)]:
        assert done(path, answer), (who, path, answer.status_code, answer.text)
    else:
        assert refused(who, path, answer), (who, path, answer.status_code, answer.text)


@pytest.mark.parametrize("who", sorted(EVERYONE))
@pytest.mark.parametrize("template", sorted(OTHER_PROJECT))
def test_a_manager_cannot_act_on_another_managers_project(app: StaffApp, who: str, template: str) -> None:
    path = template.replace("{project_id}", "books")
    answer = ask(app, who, "POST", path)
    if who in OTHER_PROJECT[template]:
        assert done(path, answer), (who, path, answer.text)
    else:
        assert refused(who, path, answer), (who, path, answer.status_code)


def test_refusals_of_people_are_in_the_access_log(app: StaffApp) -> None:
    ask(app, AUDITOR, "POST", "/api/projects/meals/open-fundraising")
    ask(app, MANAGER, "POST", "/api/projects/books/open-fundraising")
    newest = app.store.access_log(limit=10)
    refusals = [(r.actor, r.target, r.detail) for r in newest if r.decision == "refused"][:2]
    assert refusals == [
        (
            "project-manager",
            "POST /api/projects/books/open-fundraising",
            "project.fundraising not granted to project_manager",
        ),
        (
            "auditor",
            "POST /api/projects/meals/open-fundraising",
            "project.fundraising not granted to auditor",
        ),
    ]


def test_a_refused_page_is_a_403_page_in_both_languages(app: StaffApp) -> None:
    answer = ask(app, FINANCE, "GET", "/staff/access-log")
    assert answer.status_code == 403 and "无权访问" in answer.text and "Not allowed" in answer.text
    assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
