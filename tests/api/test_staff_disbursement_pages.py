"""The console's disbursement pages through their own endpoints, on a seeded ledger: a request with
documents, four eyes refused early, bad documents and forms refused with nothing kept or sent, another
manager's project, stale forms, downloads; and the JSON API's twin of each."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.contracts import events as ev
from services.staff.domain.roles import Role
from tests.fixtures import factories as f
from tests.fixtures.staff import StaffApp, csrf_of, log_in, staff_app

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PROGRAM = b"MZ\x90\x00" + b"\x00" * 64  # a Windows program, whatever its name says
LIMIT = 4096
BIG = 2_000_000  # fen; above the default threshold of 1,000,000: two approvers
SEED = [
    f.confirmed("meals", 5_000_000, 0),
    f.disbursement(ev.DisbursementRequested, "meals", "d-ada", "ada", amount_fen=500),
    f.disbursement(ev.DisbursementRequested, "meals", "d-big", "min", amount_fen=BIG),
    f.disbursement(ev.DisbursementApproved, "meals", "d-big", "fin"),
    # 'books' is only registered: the ledger refuses to pay anything out of it.
    f.disbursement(ev.DisbursementRequested, "books", "d-early", "ada"),
]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[StaffApp]:
    with staff_app(tmp_path, seed=SEED, document_max_bytes=LIMIT) as made:
        made.add("ada", Role.ADMINISTRATOR)
        made.add("min", Role.PROJECT_MANAGER, projects=frozenset({"meals"}))
        made.add("max", Role.PROJECT_MANAGER, projects=frozenset({"books"}))
        made.add("fin", Role.FINANCE_OFFICER)
        made.add("fin2", Role.FINANCE_OFFICER)
        yield made


def browser(app: StaffApp, username: str) -> TestClient:
    client = TestClient(app.client.app)
    assert log_in(client, username).status_code == 303
    return client


def request_form(**changes: str) -> dict[str, str]:
    return {
        "payee": "阳光助餐点 Sunshine canteen",
        "purpose": "十二月午餐 December lunches",
        "amount_yuan": "12345.67",
        "planned_on": "2026-12-20",
        **changes,
    }


def send_request(
    client: TestClient, files: list[tuple[str, bytes, str]], project_id: str = "meals", **changes: str
) -> httpx.Response:
    token = csrf_of(client.get("/staff/projects/meals/disbursements/new").text)
    answer: httpx.Response = client.post(
        f"/staff/projects/{project_id}/disbursements",
        data={"csrf": token, **request_form(**changes)},
        files=[("documents", file) for file in files],
        follow_redirects=False,
    )
    return answer


def stored_files(tmp: Path) -> list[Path]:
    return [p for p in (tmp / "documents").rglob("*") if p.is_file()]


def test_a_manager_requests_with_documents_stored_under_their_sha256(app: StaffApp, tmp_path: Path) -> None:
    client = browser(app, "min")
    answer = send_request(client, [("quote.pdf", PDF, "application/pdf"), ("photo.png", PNG, "image/png")])
    assert answer.status_code == 303, answer.text
    [sent] = app.published.events
    assert isinstance(sent, ev.DisbursementRequested)
    assert (sent.actor, sent.project_id, sent.amount_fen, sent.currency) == ("min", "meals", 1_234_567, "CNY")
    assert sent.planned_on == "2026-12-20"
    hashes = [hashlib.sha256(PDF).hexdigest(), hashlib.sha256(PNG).hexdigest()]
    assert sent.document_sha256s == hashes
    assert answer.headers["location"] == (
        f"/staff/projects/meals/disbursements/{sent.disbursement_id}?sent={sent.event_id}"
    )
    assert sorted(p.name for p in stored_files(tmp_path)) == sorted(hashes)
    assert (tmp_path / "documents" / hashes[0][:2] / hashes[0]).read_bytes() == PDF
    # Not yet applied by the ledger: the page says so rather than guessing.
    assert "Sent; the ledger has not decided yet." in client.get(answer.headers["location"]).text


@pytest.mark.parametrize(
    ("file", "status", "says"),
    [
        (("big.pdf", PDF + b"x" * LIMIT, "application/pdf"), 413, f"larger than {LIMIT} bytes"),
        (("invoice.pdf", PROGRAM, "application/pdf"), 415, "only PDF, PNG, JPEG files are taken"),
        (("empty.pdf", b"", "application/pdf"), 422, "the file is empty"),
    ],
    ids=["over the size limit", "a program named .pdf", "empty"],
)
def test_a_refused_document_is_named_and_nothing_is_kept_or_sent(
    app: StaffApp, tmp_path: Path, file: tuple[str, bytes, str], status: int, says: str
) -> None:
    client = browser(app, "min")
    answer = send_request(client, [("fine.pdf", PDF, "application/pdf"), file])
    assert answer.status_code == status
    assert says in answer.text and file[0] in answer.text
    assert 'value="阳光助餐点 Sunshine canteen"' in answer.text  # the form is shown again, filled in
    assert app.published.events == [] and stored_files(tmp_path) == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"amount_yuan": "12.345"}, "amount_yuan"),
        ({"amount_yuan": "-5"}, "amount_yuan"),
        ({"payee": ""}, "payee"),
        ({"planned_on": "someday"}, "planned_on"),
        ({"purpose": "bad\u202etext"}, "purpose"),
    ],
)
def test_a_bad_request_is_shown_again_naming_the_field(
    app: StaffApp, tmp_path: Path, changes: dict[str, str], field: str
) -> None:
    answer = send_request(browser(app, "min"), [("quote.pdf", PDF, "application/pdf")], **changes)
    assert answer.status_code == 422
    assert f'<code class="field">{field}</code>' in answer.text
    assert app.published.events == [] and stored_files(tmp_path) == []


def test_a_request_without_documents_is_refused(app: StaffApp) -> None:
    answer = send_request(browser(app, "min"), [])
    assert answer.status_code == 422 and "upload at least one supporting document" in answer.text
    assert app.published.events == []


def test_a_stale_form_is_refused_and_nothing_is_sent(app: StaffApp, tmp_path: Path) -> None:
    client = browser(app, "min")
    answer = client.post(
        "/staff/projects/meals/disbursements",
        data={"csrf": "0" * 64, **request_form()},
        files=[("documents", ("quote.pdf", PDF, "application/pdf"))],
        follow_redirects=False,
    )
    assert answer.status_code == 403 and "the form expired" in answer.text
    fin = browser(app, "fin2")
    approve = fin.post(
        "/staff/projects/meals/disbursements/d-big/approve", data={"csrf": "stale"}, follow_redirects=False
    )
    assert approve.status_code == 403
    assert app.published.events == [] and stored_files(tmp_path) == []


def test_another_managers_project_is_refused_and_logged(app: StaffApp) -> None:
    client = browser(app, "max")  # runs 'books', not 'meals'
    assert client.get("/staff/projects/meals/disbursements").status_code == 403
    token = csrf_of(client.get("/staff/projects/books/disbursements/new").text)
    answer = client.post(
        "/staff/projects/meals/disbursements",
        data={"csrf": token, **request_form()},
        files=[("documents", ("quote.pdf", PDF, "application/pdf"))],
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert app.published.events == []
    refusals = [(r.actor, r.target) for r in app.store.access_log(limit=5) if r.decision == "refused"]
    assert ("max", "POST /staff/projects/meals/disbursements") in refusals
    assert ("max", "GET /staff/projects/meals/disbursements") in refusals


def press(client: TestClient, path: str, **fields: str) -> httpx.Response:
    page = client.get("/staff/projects/meals/disbursements/" + path.split("/")[0]).text
    answer: httpx.Response = client.post(
        f"/staff/projects/meals/disbursements/{path}",
        data={"csrf": csrf_of(page), **fields},
        follow_redirects=False,
    )
    return answer


def test_the_requester_may_not_approve_their_own_request(app: StaffApp) -> None:
    answer = press(browser(app, "ada"), "d-ada/approve")
    assert answer.status_code == 409
    assert "you requested this disbursement: another person must approve it" in answer.text
    assert app.published.events == []


def test_one_person_may_not_approve_twice_and_the_page_counts_approvals(app: StaffApp) -> None:
    fin = browser(app, "fin")
    page = fin.get("/staff/projects/meals/disbursements/d-big").text
    assert "needs 2 approvals, 1 given" in page and "(fin)" in page
    answer = press(fin, "d-big/approve")
    assert answer.status_code == 409 and "you have already approved this disbursement" in answer.text
    assert app.published.events == []
    # Someone else may: their approval is sent, with their comment, as theirs.
    second = press(browser(app, "fin2"), "d-big/approve", comment="发票已核 invoice checked")
    assert second.status_code == 303
    [approval] = app.published.events
    assert isinstance(approval, ev.DisbursementApproved)
    assert (approval.actor, approval.disbursement_id, approval.comment) == (
        "fin2",
        "d-big",
        "发票已核 invoice checked",
    )


def test_reject_pay_and_evidence_are_sent_as_the_person(app: StaffApp, tmp_path: Path) -> None:
    fin = browser(app, "fin2")
    assert press(fin, "d-big/reject").status_code == 422  # a rejection says why
    assert press(fin, "d-big/reject", comment="报价过高 quote too high").status_code == 303
    assert press(fin, "d-big/pay", payout_ref="ICBC-20261220-0001").status_code == 303
    page = fin.get("/staff/projects/meals/disbursements/d-big").text
    answer = fin.post(
        "/staff/projects/meals/disbursements/d-big/evidence",
        data={"csrf": csrf_of(page), "description": "受益人签收单 beneficiary sign-off"},
        files={"document": ("signoff.png", PNG, "image/png")},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    rejected, paid, evidence = app.published.events
    assert isinstance(rejected, ev.DisbursementRejected) and rejected.reason == "报价过高 quote too high"
    assert isinstance(paid, ev.DisbursementPaid) and paid.payout_ref == "ICBC-20261220-0001"
    assert isinstance(evidence, ev.EvidenceAttached)
    assert evidence.document_sha256 == hashlib.sha256(PNG).hexdigest()
    assert {e.actor for e in app.published.events} == {"fin2"}
    refused = fin.post(
        "/staff/projects/meals/disbursements/d-big/evidence",
        data={"csrf": csrf_of(page), "description": "发票 invoice"},
        files={"document": ("invoice.pdf", PROGRAM, "application/pdf")},
        follow_redirects=False,
    )
    assert refused.status_code == 415 and len(app.published.events) == 3
    assert [p.name for p in stored_files(tmp_path)] == [evidence.document_sha256]


def test_documents_download_as_attachments_for_the_projects_staff_only(app: StaffApp) -> None:
    client = browser(app, "min")
    assert send_request(client, [("报价单 quote.pdf", PDF, "application/pdf")]).status_code == 303
    sha = hashlib.sha256(PDF).hexdigest()
    got = browser(app, "fin").get(f"/staff/projects/meals/documents/{sha}")
    assert got.status_code == 200 and got.content == PDF
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["content-disposition"].startswith('attachment; filename="')
    assert "filename*=UTF-8''%E6%8A%A5%E4%BB%B7%E5%8D%95%20quote.pdf" in got.headers["content-disposition"]
    logged = [(r.actor, r.action, r.detail) for r in app.store.access_log(limit=5)]
    assert ("fin", "document.download", f"报价单 quote.pdf ({sha})") in logged
    # Another manager's project: refused; under a project it was not uploaded for: not there.
    assert browser(app, "max").get(f"/staff/projects/meals/documents/{sha}").status_code == 403
    assert browser(app, "max").get(f"/staff/projects/books/documents/{sha}").status_code == 404


def api(app: StaffApp, username: str) -> TestClient:
    return browser(app, username)


def test_the_json_api_uploads_requests_and_refuses_four_eyes_early(app: StaffApp) -> None:
    min_ = api(app, "min")
    uploaded = min_.post(
        "/api/projects/meals/documents", files={"file": ("quote.pdf", PDF, "application/pdf")}
    )
    assert uploaded.status_code == 201
    assert uploaded.json() == {
        "sha256": hashlib.sha256(PDF).hexdigest(),
        "media_type": "application/pdf",
        "size_bytes": len(PDF),
    }
    refused = min_.post(
        "/api/projects/meals/documents", files={"file": ("x.pdf", PROGRAM, "application/pdf")}
    )
    assert refused.status_code == 415
    body: dict[str, Any] = {
        "payee": "阳光助餐点",
        "purpose": "午餐",
        "amount_fen": 123_456,
        "planned_on": "2026-12-20",
        "document_sha256s": [uploaded.json()["sha256"]],
    }
    answer = min_.post("/api/projects/meals/disbursements", json=body)
    assert answer.status_code == 202, answer.text
    unknown = min_.post("/api/projects/meals/disbursements", json={**body, "document_sha256s": ["b" * 64]})
    assert unknown.status_code == 422 and "b" * 64 in unknown.json()["detail"]
    [sent] = app.published.events
    assert isinstance(sent, ev.DisbursementRequested) and sent.actor == "min"
    assert api(app, "ada").post("/api/projects/meals/disbursements/d-ada/approve", json={}).status_code == 409
    assert api(app, "fin").post("/api/projects/meals/disbursements/d-big/approve", json={}).status_code == 409
    assert api(app, "fin").post("/api/projects/meals/disbursements/nope/approve", json={}).status_code == 404
    assert len(app.published.events) == 1
    listed = api(app, "fin").get("/api/projects/meals/disbursements").json()
    big = next(d for d in listed if d["disbursement_id"] == "d-big")
    assert (big["status"], big["approvals_needed"], big["approvers"]) == ("requested", 2, ["fin"])
    assert api(app, "max").get("/api/projects/meals/disbursements").status_code == 403


def test_the_list_shows_each_disbursement_with_its_approvals(app: StaffApp) -> None:
    page = browser(app, "min").get("/staff/projects/meals/disbursements").text
    assert len(re.findall(r'<li class="disbursement">', page)) == 2
    assert "approvals 1 / 2" in page and "approvals 0 / 1" in page
    assert "/staff/projects/meals/disbursements/new" in page
    assert (
        "/staff/projects/meals/disbursements/new"
        not in browser(app, "fin").get("/staff/projects/meals/disbursements").text
    )


def test_a_request_the_ledger_refused_is_shown_with_its_reason(app: StaffApp) -> None:
    entry = next(e for e in SEED if e.project_id == "books")
    page = browser(app, "fin").get(f"/staff/projects/books/disbursements/d-early?sent={entry.event_id}").text
    assert "The ledger refused this step" in page
    assert '<span class="reason">no disbursements while the project is registered</span>' in page
    assert '<strong class="state">refused</strong>' in page
    assert "/approve" not in page and "/evidence" not in page
