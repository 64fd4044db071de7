"""The authorization matrix: every staff route × every role, a machine client and nobody.

Staff routes are found in the app's own OpenAPI document (every path under
/staff, every operation that takes credentials), so a route added without an
entry in MATRIX fails the first test. Refused means 403 for a person (logged),
401 from the API for nobody, and the log-in page (303) for a page.
"""

from __future__ import annotations

import hashlib
import importlib
import pkgutil
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from services.api import routes as api_routes
from services.contracts import events as ev
from services.staff.domain.roles import Role
from tests.api.test_end_to_end import project_body
from tests.fixtures import factories as f
from tests.fixtures.fake_ledger import feed_event
from tests.fixtures.gateway_in_process import in_process_gateway
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

# Disbursements: managers request, finance approves and pays, both attach evidence; people only.
MONEY_OUT = frozenset({ADMIN, FINANCE})
DISBURSEMENT = "/staff/projects/{project_id}/disbursements/{disbursement_id}"
DISBURSEMENT_API = "/api/projects/{project_id}/disbursements/{disbursement_id}"
DISBURSEMENTS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/staff/projects/{project_id}/disbursements"): STAFF,
    ("GET", "/staff/projects/{project_id}/disbursements/new"): frozenset({ADMIN, MANAGER}),
    ("POST", "/staff/projects/{project_id}/disbursements"): frozenset({ADMIN, MANAGER}),
    ("GET", DISBURSEMENT): STAFF,
    ("POST", f"{DISBURSEMENT}/approve"): MONEY_OUT,
    ("POST", f"{DISBURSEMENT}/reject"): MONEY_OUT,
    ("POST", f"{DISBURSEMENT}/pay"): MONEY_OUT,
    ("POST", f"{DISBURSEMENT}/evidence"): frozenset({ADMIN, MANAGER, FINANCE}),
    ("GET", "/staff/projects/{project_id}/documents/{sha256}"): STAFF,
    ("GET", "/api/projects/{project_id}/disbursements"): STAFF,
    ("POST", "/api/projects/{project_id}/documents"): frozenset({ADMIN, MANAGER, FINANCE}),
    ("POST", "/api/projects/{project_id}/disbursements"): frozenset({ADMIN, MANAGER}),
    ("POST", f"{DISBURSEMENT_API}/approve"): MONEY_OUT,
    ("POST", f"{DISBURSEMENT_API}/reject"): MONEY_OUT,
    ("POST", f"{DISBURSEMENT_API}/pay"): MONEY_OUT,
    ("POST", f"{DISBURSEMENT_API}/evidence"): frozenset({ADMIN, MANAGER, FINANCE}),
}
PDF = b"%PDF-1.4\n%%EOF\n"
PDF_SHA256 = hashlib.sha256(PDF).hexdigest()
# A disbursement of each project, requested by someone who is none of the matrix's people.
SEED = [
    f.disbursement(ev.DisbursementRequested, project_id, f"d-{project_id}", "someone-else")
    for project_id in ("meals", "books")
]

# A project's later steps: reports and corrections by its manager; suspending, resuming and
# closing by administrators. The shared machine token holds none of them.
LIFECYCLE_STEPS = {
    "report-progress": frozenset({ADMIN, MANAGER}),
    "publish-correction": frozenset({ADMIN, MANAGER}),
    "suspend": frozenset({ADMIN}),
    "resume": frozenset({ADMIN}),
    "close": frozenset({ADMIN}),
}
LIFECYCLE: dict[tuple[str, str], frozenset[str]] = {
    ("POST", f"{prefix}/{{project_id}}/{step}"): who
    for step, who in LIFECYCLE_STEPS.items()
    for prefix in ("/staff/projects", "/api/projects")
}

# Venue screens: administrators everywhere, the venue operator at 'hall-1' (shows 'meals'), not
# 'hall-2' (shows 'books'). A moderation decision is on a name held for each asker and venue.
VENUE_OPS = frozenset({ADMIN, OPERATOR})
VENUE_SCREENS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/staff/venues"): VENUE_OPS,
    ("GET", "/staff/venues/{venue_id}"): VENUE_OPS,
    ("POST", "/staff/venues/{venue_id}"): VENUE_OPS,
    ("GET", "/staff/venues/{venue_id}/moderation"): VENUE_OPS,
    ("POST", "/staff/venues/{venue_id}/moderation/{entry_id}"): VENUE_OPS,
}
VENUE_OF = {"meals": "hall-1", "books": "hall-2"}
OTHER_VENUE = {
    (method, path): who - {OPERATOR} for (method, path), who in VENUE_SCREENS.items() if "{venue_id}" in path
}

# Money that does not come online: the till (administrators, and operators at their venues only),
# refunds (finance), money in suspense (everyone reads it; finance requests, another approves).
SUSPENSE_REQUEST = "/staff/suspense/{project_id}/requests"
MONEY_IN: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/staff/till"): VENUE_OPS,
    ("POST", "/staff/till/{venue_id}"): VENUE_OPS,
    ("GET", "/staff/refunds"): MONEY_OUT,
    ("POST", "/staff/refunds/{donation_id}"): MONEY_OUT,
    ("GET", "/staff/suspense"): STAFF,
    ("POST", SUSPENSE_REQUEST): MONEY_OUT,
    ("POST", f"{SUSPENSE_REQUEST}/{{resolution_id}}/approve"): MONEY_OUT,
    ("POST", f"{SUSPENSE_REQUEST}/{{resolution_id}}/reject"): MONEY_OUT,
}
# Past the check, these find nothing to act on in the matrix's ledger: no such gift or request
# (404), or no money in suspense (422). Refused is 403 all the same.
NOTHING_TO_ACT_ON = ("/staff/refunds/", "/staff/suspense/")
OTHER_VENUE[("POST", "/staff/till/{venue_id}")] = frozenset({ADMIN})

# Journal exports (routes/staff_exports.py): the audit pages' people; a manager's all-projects
# export holds their own projects, and another project's is refused: tests/api/test_staff_exports.py.
# The exports form posted with the matrix's generic fields is the form again naming them (422).
EXPORTERS = frozenset({ADMIN, AUDITOR, MANAGER})
EXPORTS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/staff/audit/exports"): EXPORTERS,
    ("POST", "/staff/audit/exports"): EXPORTERS,
    **{("GET", f"/staff/audit/journal.{suffix}"): EXPORTERS for suffix in ("csv", "xlsx")},
    **{
        ("GET", f"/staff/audit/projects/{{project_id}}/journal.{suffix}"): EXPORTERS
        for suffix in ("csv", "xlsx")
    },
}
NOTHING_TO_ACT_ON += ("/staff/audit/exports",)

# The audit pages (Permission.AUDIT): administrators and auditors everywhere, a project manager on
# their own projects (the overview shows them only those: tests/api/test_staff_audit_overview.py).
AUDITORS = frozenset({ADMIN, AUDITOR, MANAGER})
AUDIT_OVERVIEW: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/staff/audit"): AUDITORS,
    ("GET", "/staff/audit/overview.csv"): AUDITORS,
}
# Statements and the disclosure report (routes/staff_statements.py), the same people; a donor's
# statement posted without receipts is the form again naming the field (422). A manager's
# refusal on another project's statement: tests/api/test_staff_statements.py.
AUDIT_PROJECT = "/staff/audit/projects/{project_id}"
STATEMENTS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", f"{AUDIT_PROJECT}/statement"): AUDITORS,
    ("GET", f"{AUDIT_PROJECT}/disclosure"): AUDITORS,
    ("GET", f"{AUDIT_PROJECT}/disclosure.pdf"): AUDITORS,
    ("GET", "/staff/audit/donor-statement"): AUDITORS,
    ("POST", "/staff/audit/donor-statement"): AUDITORS,
}
NOTHING_TO_ACT_ON += ("/staff/audit/donor-statement",)
# The closed-loop page itself (routes/staff_audit.py), the same people. A manager's refusal on
# another project's page: tests/api/test_staff_audit_page.py.
CLOSED_LOOP: dict[tuple[str, str], frozenset[str]] = {("GET", AUDIT_PROJECT): AUDITORS}
# The closed-loop page's charts (routes/staff_audit_charts.py): the page's people. A manager's
# refusal on another project's charts: tests/api/test_staff_audit_charts.py.
AUDIT_CHARTS = f"{AUDIT_PROJECT}/charts"
CHARTS: dict[tuple[str, str], frozenset[str]] = {
    ("GET", AUDIT_CHARTS): AUDITORS,
    ("GET", f"{AUDIT_CHARTS}.json"): AUDITORS,
    **{("GET", f"{AUDIT_CHARTS}/{name}.csv"): AUDITORS for name in ("cumulative", "gifts", "flow")},
}

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
    **LIFECYCLE,
    **DISBURSEMENTS,
    **VENUE_SCREENS,
    **MONEY_IN,
    **AUDIT_OVERVIEW,
    **STATEMENTS,
    **CLOSED_LOOP,
    **CHARTS,
    **EXPORTS,
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
    with staff_app(tmp_path_factory.mktemp("matrix"), seed=SEED) as made:
        for project_id in ("meals", "books"):
            documents = made.client.app.state.documents  # type: ignore[attr-defined]
            documents.keep(PDF, project_id=project_id, filename="a.pdf", uploaded_by="x", now_ms=1)
        gateway = in_process_gateway(tmp_path_factory.mktemp("matrix-display"), "machine-s3cret")
        made.client.app.state.display = gateway.client  # type: ignore[attr-defined]
        gateway.hub.ingest(
            replace(
                feed_event(project, amount_fen=100, seq=1, shown_name="{{7*7}}"), event_id=f"{who}.{venue}"
            )
            for who in EVERYONE
            for project, venue in VENUE_OF.items()
        )
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
    elif (method == "POST" and "/disbursements" in path) or path.endswith("/documents"):
        body = disbursement_body(client, path)
    elif method == "POST" and path.rsplit("/", 1)[-1] in LIFECYCLE_STEPS:
        body = lifecycle_body(client, path)
    elif method == "POST" and path.startswith("/staff/till/"):
        token = csrf_of(client.get("/staff/login").text)
        body = {"data": {"csrf": token, "project_id": "meals", "kind": "cash_box", "amount_yuan": "1"}}
    elif method == "POST" and path.startswith("/staff/venues/"):
        token = csrf_of(client.get("/staff/login").text)
        if "/moderation/" in path:
            # Each asker decides on a name of their own, so an earlier decision leaves it held.
            path = f"{path.rsplit('/', 1)[0]}/{who}.{path.split('/')[3]}"
            body = {"data": {"csrf": token, "subject": "name", "decision": "approve"}}
        else:
            # The venue keeps its project, so later decisions on its held names still apply.
            project = next(p for p, v in VENUE_OF.items() if v == path.split("/")[3])
            title = {"title_zh": "厅", "projects": project, "theme": "hall", "feed_scope": "projects"}
            body = {"data": {"csrf": token, **title}}
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


def disbursement_body(client: TestClient, path: str) -> dict[str, Any]:
    """What a disbursement route takes: a form (with a file where it uploads) or a JSON body."""
    pdf = ("quote.pdf", PDF, "application/pdf")
    if path.startswith("/staff"):
        token = csrf_of(client.get("/staff/login").text)
        fields = {
            "csrf": token,
            "comment": "no",
            "payout_ref": "BANK-1",
            "description": "发票",
            "payee": "助餐点",
            "purpose": "午餐",
            "amount_yuan": "10",
            "planned_on": "2026-12-20",
        }
        return {"data": fields, "files": [("documents" if path.endswith("s") else "document", pdf)]}
    if path.endswith("/documents"):
        return {"files": {"file": pdf}}
    step = path.rsplit("/", 1)[-1]
    return {
        "json": {
            "disbursements": {
                "payee": "助餐点",
                "purpose": "午餐",
                "amount_fen": 1000,
                "planned_on": "2026-12-20",
                "document_sha256s": [PDF_SHA256],
            },
            "approve": {},
            "reject": {"comment": "no"},
            "pay": {"payout_ref": "BANK-1"},
            "evidence": {"document_sha256": PDF_SHA256, "description": "发票"},
        }[step]
    }


def concrete(template: str, project_id: str) -> str:
    return (
        template.replace("{project_id}", project_id)
        .replace("{disbursement_id}", f"d-{project_id}")
        .replace("{sha256}", PDF_SHA256)
        .replace("{venue_id}", VENUE_OF[project_id])
        .replace("{entry_id}", "held")
        .replace("{donation_id}", f"gift-{project_id}")
        .replace("{resolution_id}", f"sr-{project_id}")
    )


def lifecycle_body(client: TestClient, path: str) -> dict[str, Any]:
    """What a later step of a project takes: a form with its CSRF token, or a JSON body."""
    project_id, step = path.split("/")[3:5]
    queries = client.app.state.queries  # type: ignore[attr-defined]
    fields = {
        "report-progress": {"summary": "进展 progress"},
        "publish-correction": {
            "corrects_event_id": queries.project_entries(project_id)[0].record["entry_id"],
            "note": "更正 correction",
        },
        "suspend": {"reason": "审计 audit"},
        "resume": {"reason": "审计通过 audit passed"},
        "close": {"leftover_disposition": "none"},
    }[step]
    if path.startswith("/staff"):
        return {"data": {"csrf": csrf_of(client.get("/staff/login").text), **fields}}
    return {"json": fields}


def refused(who: str, path: str, answer: Any) -> bool:
    if who == NOBODY or (who == MACHINE_CLIENT and path.startswith("/staff")):
        if path.startswith("/staff"):
            return answer.status_code == 303 and answer.headers["location"] == "/staff/login"
        return answer.status_code == 401
    return answer.status_code == 403


def done(path: str, answer: Any) -> bool:
    """Served: a page, an accepted event, or a console step's redirect to the project's page."""
    if path.startswith(NOTHING_TO_ACT_ON) and answer.status_code in (404, 422):
        return True
    if answer.status_code == 303 and answer.headers["location"].startswith("/staff/till?"):
        return (
            re.fullmatch(r"/staff/till\?venue=[^&]+&sent=[0-9a-f-]{36}", answer.headers["location"])
            is not None
        )
    if answer.status_code == 303 and answer.headers["location"].startswith("/staff/venues/"):
        return (
            re.fullmatch(r"/staff/venues/[^?]+\?(saved=1|done=approve)", answer.headers["location"])
            is not None
        )
    if answer.status_code == 303:
        return (
            re.fullmatch(r"/staff/projects/[^?]+\?sent=[0-9a-f-]{36}", answer.headers["location"]) is not None
        )
    return answer.status_code in (200, 201, 202)


@pytest.mark.parametrize("who", sorted(EVERYONE))
@pytest.mark.parametrize(("method", "template"), sorted(MATRIX))
def test_the_matrix(app: StaffApp, who: str, method: str, template: str) -> None:
    path = concrete(template, "meals")
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
    path = concrete(template, "books")
    answer = ask(app, who, "POST", path)
    if who in OTHER_PROJECT[template]:
        assert done(path, answer), (who, path, answer.text)
    else:
        assert refused(who, path, answer), (who, path, answer.status_code)


@pytest.mark.parametrize("who", sorted(EVERYONE))
@pytest.mark.parametrize(("method", "template"), sorted(OTHER_VENUE))
def test_an_operator_cannot_act_at_another_venue(app: StaffApp, who: str, method: str, template: str) -> None:
    path = concrete(template, "books")
    answer = ask(app, who, method, path)
    if who in OTHER_VENUE[(method, template)]:
        assert done(path, answer), (who, path, answer.status_code, answer.text)
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
