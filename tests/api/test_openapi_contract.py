"""The OpenAPI document tells the truth: Schemathesis, all checks, against the running API.

The real app is served by uvicorn on a free port, over a real ledger (SQLite and
PostgreSQL) fed through the session's Kafka broker under this test's own topic
prefix, with projects, a gift and signed tree heads in it. `st run` then tries
every operation, once as anyone and once with the staff token, and any finding
fails the test. Its hooks (openapi_hooks.py) say what they adjust and why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.contracts.topics import Topics
from services.ledger.read.queries import LedgerQueries
from services.platform.db import make_engine
from tests.api.test_end_to_end import project_body as project
from tests.fixtures.giving import giving_settings, start_giving
from tests.fixtures.ledger import eventually

pytestmark = pytest.mark.integration

HOOKS = Path(__file__).with_name("openapi_hooks.py")
ST = [sys.executable, "-m", "schemathesis.cli"]  # `st`, from this interpreter's packages
MAX_EXAMPLES = 30  # per operation and phase: about 15 s a run
SEED = 20260501  # fixed, so a finding is reproduced by the same run


@dataclass
class ServedApi:
    base_url: str
    staff: dict[str, str]
    known: dict[str, list[object]]  # ids and sizes that exist, for the generator to draw from


def status_of(http: httpx.Client, project_id: str) -> str | None:
    response = http.get(f"/api/projects/{project_id}/totals")
    return response.json()["status"] if response.status_code == 200 else None


def seed(http: httpx.Client, staff: dict[str, str]) -> None:
    """Three projects: one only registered, two fundraising, one of them with a gift."""
    for project_id in ("registered-only", "meals", "books"):
        assert http.post("/api/projects", json=project(project_id), headers=staff).status_code == 202
        eventually(lambda p=project_id: status_of(http, p) == "registered", what=f"{project_id} registered")
    for project_id in ("meals", "books"):
        for step, status in (("approve", "approved"), ("open-fundraising", "fundraising")):
            assert http.post(f"/api/projects/{project_id}/{step}", headers=staff).status_code == 202
            eventually(lambda p=project_id, s=status: status_of(http, p) == s, what=f"{project_id} {status}")
    gift = {"project_id": "meals", "donation_id": "gift-1", "provider_charge_id": "c-1", "gross_fen": 5000}
    assert http.post("/api/internal/donations/confirmed", json=gift, headers=staff).status_code == 202
    eventually(
        lambda: http.get("/api/projects/meals/totals").json()["gross_fen"] == 5000, what="the gift applied"
    )


@pytest.fixture
def served_api(kafka_bootstrap: str, topics: Topics, db_url: str, tmp_path: Path) -> Iterator[ServedApi]:
    # The whole giving system, the payment sandbox too: a donation generated here is a real pledge.
    settings = giving_settings(kafka_bootstrap, topics, db_url, tmp_path, internal_donations_enabled=True)
    system = start_giving(settings)
    ledger = system.ledger
    engine = make_engine(db_url, writer=False)
    base_url = settings.public_base_url
    staff = {"Authorization": f"Bearer {settings.staff_token}"}
    try:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            seed(http, staff)
            ledger.app.signer.publish_if_grown()  # two signed heads, for consistency proofs
            http.post("/api/projects", json=project("later"), headers=staff)
            eventually(lambda: status_of(http, "later") == "registered", what="later registered")
            ledger.app.signer.publish_if_grown()
            heads = [head["tree_size"] for head in http.get("/api/transparency/tree-heads").json()]
            assert len(heads) == 2
            known: dict[str, list[object]] = {
                "projects": ["registered-only", "meals", "books", "later"],
                "donations": ["gift-1"],
                "entries": [LedgerQueries(engine).donation("gift-1")["entry_id"]],  # type: ignore[index]
                "tree-sizes": sorted(heads),
            }
        yield ServedApi(base_url, staff, known)
        # What the fuzzing published went through Kafka into this ledger: it must still apply events.
        with httpx.Client(base_url=base_url, timeout=30) as http:
            assert http.post("/api/projects", json=project("after-fuzz"), headers=staff).status_code == 202
            eventually(lambda: status_of(http, "after-fuzz") == "registered", what="the ledger still applies")
        assert ledger.app.consumer.healthy
    finally:
        system.stop()
        engine.dispose()


def config(api: ServedApi, path: Path) -> Path:
    """Half the generated ids and sizes are ones that exist, so the 200s are tried too, not only 404s."""
    bound = {
        "path.project_id": "projects",
        "body.project_id": "projects",
        "path.donation_id": "donations",
        "path.entry_id": "entries",
        "query.first": "tree-sizes",
        "query.second": "tree-sizes",
    }
    lines = [f"[dictionaries.{name}]\nvalues = {json.dumps(values)}\n" for name, values in api.known.items()]
    lines.append("[parameters]")
    lines += [f'"{key}" = {{ dictionary = "{name}", probability = 0.5 }}' for key, name in bound.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def schemathesis(api: ServedApi, tmp_path: Path, *headers: str) -> tuple[int, str, float]:
    command = [
        *ST,
        "--no-color",
        "--config-file",
        str(config(api, tmp_path / "schemathesis.toml")),
        "run",
        f"{api.base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--request-timeout",
        "30",
    ]
    for header in headers:
        command += ["--header", header]
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=tmp_path,  # anything it writes stays out of the repository
        env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - started


def test_the_api_answers_as_its_openapi_document_says(served_api: ServedApi, tmp_path: Path) -> None:
    anyone = schemathesis(served_api, tmp_path)
    token = served_api.staff["Authorization"]
    staff = schemathesis(served_api, tmp_path, f"Authorization: {token}")
    for who, (code, output, seconds) in (("without a token", anyone), ("with the staff token", staff)):
        print(f"--- schemathesis {who}: exit {code} in {seconds:.1f}s\n{output}")
    assert anyone[0] == 0, f"schemathesis without a token found problems:\n{anyone[1]}"
    assert staff[0] == 0, f"schemathesis with the staff token found problems:\n{staff[1]}"
