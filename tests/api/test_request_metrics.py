"""The API's request metrics: by route template, method and status, never by raw path."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from starlette.staticfiles import StaticFiles

from services.api.journal_watch import observe
from services.api.request_metrics import RequestMetrics


def requests(route: str, method: str, status: str) -> float:
    labels = {"route": route, "method": method, "status": status}
    return REGISTRY.get_sample_value("api_http_requests_total", labels) or 0.0


def timed(route: str, method: str) -> float:
    labels = {"route": route, "method": method}
    return REGISTRY.get_sample_value("api_http_request_duration_seconds_count", labels) or 0.0


@pytest.fixture
def client(tmp_path: object) -> TestClient:
    app = FastAPI()

    @app.get("/metrics-test/projects/{project_id}")
    def project(project_id: str) -> dict[str, str]:
        if project_id == "missing":
            raise HTTPException(404, "no such project")
        return {"project_id": project_id}

    @app.post("/metrics-test/fail")
    def fail() -> None:
        raise RuntimeError("a bug")

    @app.get("/metrics-test/in-flight")
    async def in_flight() -> dict[str, float]:
        await asyncio.sleep(0)
        return {"in_flight": REGISTRY.get_sample_value("api_http_requests_in_flight") or 0.0}

    static = tmp_path / "static"  # type: ignore[operator]
    static.mkdir()
    (static / "a.css").write_text("p{}")
    app.mount("/metrics-test/static", StaticFiles(directory=static), name="static")
    app.add_middleware(RequestMetrics)
    return TestClient(app, raise_server_exceptions=False)


def test_requests_are_counted_by_route_template_not_by_path(client: TestClient) -> None:
    route = "/metrics-test/projects/{project_id}"
    before_ok, before_404 = requests(route, "GET", "200"), requests(route, "GET", "404")
    before_timed = timed(route, "GET")
    for project_id in ("p1", "p2", "p3", "missing"):
        client.get(f"/metrics-test/projects/{project_id}")
    assert requests(route, "GET", "200") - before_ok == 3
    assert requests(route, "GET", "404") - before_404 == 1
    assert timed(route, "GET") - before_timed == 4
    raw = {"route": "/metrics-test/projects/p1", "method": "GET", "status": "200"}
    assert REGISTRY.get_sample_value("api_http_requests_total", raw) is None


def test_unknown_paths_odd_methods_errors_and_static_files_stay_few_series(client: TestClient) -> None:
    before = {
        key: requests(*key)
        for key in (
            ("unmatched", "GET", "404"),
            ("/metrics-test/fail", "POST", "500"),
            ("/metrics-test/static/{path}", "GET", "200"),
            ("unmatched", "other", "404"),
        )
    }
    client.get("/metrics-test/no/such/page/8f3a")
    client.post("/metrics-test/fail")
    client.get("/metrics-test/static/a.css")
    client.request("BREW", "/metrics-test/elsewhere")
    assert {key: requests(*key) - count for key, count in before.items()} == dict.fromkeys(before, 1.0)


def test_a_request_is_in_flight_while_it_is_answered(client: TestClient) -> None:
    assert client.get("/metrics-test/in-flight").json() == {"in_flight": 1.0}
    assert REGISTRY.get_sample_value("api_http_requests_in_flight") == 0.0


class _Status:
    def __init__(self, state: str, checked_seq: int) -> None:
        self.state = state
        self.checked_seq = checked_seq


def test_a_failed_verification_shows_as_a_gauge() -> None:
    observe(_Status("verified", 41))
    assert REGISTRY.get_sample_value("api_journal_verification_failed") == 0.0
    assert REGISTRY.get_sample_value("api_journal_verified_seq") == 41.0
    observe(_Status("failed", 41))
    assert REGISTRY.get_sample_value("api_journal_verification_failed") == 1.0
