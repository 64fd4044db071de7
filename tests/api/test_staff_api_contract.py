"""Schemathesis on the staff JSON API with an administrator's logged-in session: no 5xx.

test_openapi_contract.py fuzzes the whole document as anyone and with the machine token; a
person's session reaches further (the later steps and the disbursements take no shared token),
so this run sends the session cookie of an administrator who logged in at /staff/login, over
the operations tagged `projects` and `disbursements`. The JSON API takes no CSRF token: it
accepts JSON bodies only, which a form on another site cannot send.

The same seeded system as the contract test (projects registered, fundraising and with a gift),
plus a disbursement a manager requested on 'meals', whose id (and its quote's SHA-256) the
generator draws half the time, so approvals, payments and evidence reach an existing disbursement
and not only 404s. Afterwards the journal must hold steps in the administrator's name: the session
really was let in, and the run was not 1,000 answers of 401.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.contracts.topics import Topics
from services.ledger.read.queries import LedgerQueries
from services.platform.db import make_engine
from services.staff.domain.roles import Role
from tests.api.test_end_to_end import project_body
from tests.api.test_openapi_contract import HOOKS, SEED, ST, ServedApi, config, seed, status_of
from tests.api.test_project_whole_life import logged_in, start_console
from tests.fixtures.ledger import eventually

pytestmark = pytest.mark.integration

STAFF_TAGS = ("projects", "disbursements")
# The document declares the machine token (HTTPBearer, a required Authorization header) and not
# the session cookie, so these checks read every request carrying only the cookie as one without
# credentials ("accepted without authentication", "missing required header accepted", "missing
# Authorization: schema-violating request accepted"); positive_data_acceptance reads a 422 for a
# document hash never uploaded as a valid request refused. 5xx and the response conformance checks
# stay on.
UNDECLARED_CREDENTIAL_CHECKS = (
    "ignored_auth",
    "missing_required_header",
    "negative_data_rejection",
    "positive_data_acceptance",
)
MAX_EXAMPLES = 25  # per operation and phase: the run stays well under a minute
QUOTE = b"%PDF-1.4\n% quote\n%%EOF\n"


@dataclass
class StaffApi:
    served: ServedApi
    session_cookie: str
    queries: LedgerQueries

    def kinds_by(self, username: str) -> set[str]:
        """The kinds of the journal entries that name `username` as their actor."""
        return {
            e.record["kind"]
            for project_id in ("registered-only", "meals", "books")
            for e in self.queries.project_entries(project_id)
            if e.record["body"].get("actor") == username
        }


def requested_disbursement(manager: httpx.Client) -> tuple[str, str]:
    """A manager's request on 'meals' with a quote, once the ledger has it; its id and the quote's
    SHA-256."""
    upload = manager.post(
        "/api/projects/meals/documents", files={"file": ("q.pdf", QUOTE, "application/pdf")}
    )
    assert upload.status_code == 201, upload.text
    body = {
        "payee": "助餐点 the canteen",
        "purpose": "餐费 meals",
        "amount_fen": 1000,
        "planned_on": "2027-01-15",
        "document_sha256s": [upload.json()["sha256"]],
    }
    answer = manager.post("/api/projects/meals/disbursements", json=body)
    assert answer.status_code == 202, answer.text
    eventually(lambda: manager.get("/api/projects/meals/disbursements").json(), what="the request journaled")
    return str(answer.json()["disbursement_id"]), str(upload.json()["sha256"])


@pytest.fixture
def staff_api(kafka_bootstrap: str, topics: Topics, db_url: str, tmp_path: Path) -> Iterator[StaffApi]:
    people = [("ada", Role.ADMINISTRATOR), ("wang.min", Role.PROJECT_MANAGER)]
    system, store = start_console(
        kafka_bootstrap, topics, db_url, tmp_path, people, internal_donations_enabled=True
    )
    settings, base_url = system.settings, system.settings.public_base_url
    store.assign("wang.min", project_id="meals")
    reader = make_engine(db_url, writer=False)
    machine = {"Authorization": f"Bearer {settings.staff_token}"}
    try:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            seed(http, machine)
        manager = logged_in(base_url, "wang.min")
        disbursement_id, quote_sha256 = requested_disbursement(manager)
        manager.close()
        admin = logged_in(base_url, "ada")
        known: dict[str, list[object]] = {
            "projects": ["registered-only", "meals", "books"],
            "donations": ["gift-1"],
            # The staff operations take neither; the shared configuration names both.
            "entries": ["none"],
            "tree-sizes": [1],
            "disbursements": [disbursement_id],
            "documents": [quote_sha256],
        }
        queries = LedgerQueries(reader)
        yield StaffApi(ServedApi(base_url, machine, known), admin.cookies["staff_session"], queries)
        admin.close()
        # What the fuzzing published went through Kafka into this ledger: it must still apply events.
        with httpx.Client(base_url=base_url, timeout=30) as http:
            assert http.post("/api/projects", json=project_body("after"), headers=machine).status_code == 202
            eventually(lambda: status_of(http, "after") == "registered", what="the ledger still applies")
        assert system.ledger.app.consumer.healthy
    finally:
        system.stop()
        reader.dispose()
        store.engine.dispose()


def run(api: StaffApi, tmp_path: Path) -> tuple[int, str, float]:
    settings = config(api.served, tmp_path / "schemathesis.toml")
    with settings.open("a", encoding="utf-8") as toml:  # [parameters] is the file's last table
        for key, name in (("path.disbursement_id", "disbursements"), ("body.document_sha256", "documents")):
            toml.write(f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}\n')
    command = [
        *ST,
        "--no-color",
        "--config-file",
        str(settings),
        "run",
        f"{api.served.base_url}/openapi.json",
        *(arg for tag in STAFF_TAGS for arg in ("--include-tag", tag)),
        "--checks",
        "all",
        "--exclude-checks",
        ",".join(UNDECLARED_CREDENTIAL_CHECKS),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
        "--header",
        f"Cookie: staff_session={api.session_cookie}",
    ]
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def test_the_staff_api_with_an_administrators_session_never_answers_5xx(
    staff_api: StaffApi, tmp_path: Path
) -> None:
    code, output, seconds = run(staff_api, tmp_path)
    print(f"--- schemathesis with an administrator's session: exit {code} in {seconds:.1f}s\n{output}")
    assert "Server error" not in output, f"a 5xx:\n{output}"
    assert code == 0, f"schemathesis with an administrator's session found problems:\n{output}"
    # The session was in: a project's steps and a disbursement's, in the administrator's name.
    eventually(
        lambda: {"ProgressReported", "EvidenceAttached"} <= staff_api.kinds_by("ada"),
        what="a report and evidence the administrator's session published",
    )
