"""Monitoring the running system: the ledger, an API and a display gateway as processes of
their own on the real broker; each one's /metrics passes `promtool check metrics`,
Prometheus (Debian's binary) scrapes all three with the alert rules loaded, and the
dashboard and the alerts name only metrics the services export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.contracts.topics import Topics
from services.platform.free_ports import free_ports
from services.platform.kafka_admin import delete_topics, ensure_topics
from tests.fixtures import factories as f
from tests.fixtures.ledger import eventually, readyz
from tests.ledger.test_ledger_integration import produce, stop_process
from tests.monitoring.metric_names import (
    ALERTS,
    alert_expressions,
    dashboard_expressions,
    exported_names,
    metric_names,
    promtool,
)

REPO = Path(__file__).resolve().parents[2]
GIFTS = 5


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return str(answer.read().decode())


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def sample_sum(text: str, name: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


@dataclass
class System:
    ports: dict[str, int]  # job → port: ledger, api, display
    logs: Path

    def metrics(self, job: str) -> str:
        return get(f"http://127.0.0.1:{self.ports[job]}/metrics")


@pytest.fixture(scope="module")
def running_system(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    topics = Topics(prefix=f"mon{uuid.uuid4().hex[:8]}.")
    ensure_topics(kafka_bootstrap, topics.specs())
    tmp = tmp_path_factory.mktemp("monitoring")
    ledger_port, api_port, display_port = free_ports(3)
    env = {
        **os.environ,
        "CHARITY_VAR_DIR": str(tmp),
        "CHARITY_DATABASE_URL": f"sqlite:///{tmp / 'ledger.db'}",
        "CHARITY_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "CHARITY_TOPIC_PREFIX": topics.prefix,
        "CHARITY_LEDGER_GROUP": f"monitoring-{topics.prefix}",
        "CHARITY_SIGNING_KEY": str(tmp / "tree-head.pem"),
        "CHARITY_CREATE_SIGNING_KEY": "true",
        "CHARITY_LEDGER_HTTP_PORT": str(ledger_port),
        "CHARITY_API_PORT": str(api_port),
        "CHARITY_DISPLAY_PORT": str(display_port),
        "CHARITY_PAYMENT_PROVIDER": "none",
        "CHARITY_WEB_SECRET_PATH": str(tmp / "web-secret.key"),
        "CHARITY_DOCUMENTS_DIR": str(tmp / "documents"),
        "CHARITY_DISPLAY_DECISIONS_FILE": str(tmp / "decisions.jsonl"),
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start(command: str, port: int) -> None:
        log = (tmp / f"{command}.log").open("ab")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "services.cli", command],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        )
        eventually(lambda: readyz(port) == 200, timeout=90, what=f"{command} ready (log: {tmp})")

    try:
        start("ledger", ledger_port)  # first: it migrates the database the API reads
        start("api", api_port)
        start("display", display_port)
        gifts = [f.confirmed("p1", 100) for _ in range(GIFTS)]
        produce(kafka_bootstrap, topics, [*f.opened_project("p1"), *gifts])
        system = System({"ledger": ledger_port, "api": api_port, "display": display_port}, tmp)
        eventually(
            lambda: sample_sum(system.metrics("ledger"), "ledger_events_applied_total") >= 3 + GIFTS,
            what="every event applied",
        )
        # Requests through routes with a path parameter, and one to a path nobody serves.
        paths = ("/api/projects", "/api/projects/p1/totals", "/api/projects/p2/totals", "/no/such/page")
        assert [status(f"http://127.0.0.1:{api_port}{path}") for path in paths] == [200, 200, 404, 404]
        yield system
    finally:
        for process in reversed(processes):
            stop_process(process)
        delete_topics(kafka_bootstrap, [spec.name for spec in topics.specs()])


pytestmark = pytest.mark.integration


@pytest.mark.parametrize("job", ["ledger", "api", "display"])
def test_each_services_metrics_pass_promtool_check_metrics(running_system: System, job: str) -> None:
    text = running_system.metrics(job)
    checked = promtool("check", "metrics", stdin=text)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.strip() == checked.stderr.strip() == ""  # not one lint problem


def test_the_api_counts_requests_by_route_template(running_system: System) -> None:
    text = running_system.metrics("api")
    routes = {
        (s.labels["route"], s.labels["status"])
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "api_http_requests_total"
    }
    assert {("/api/projects", "200"), ("/api/projects/{project_id}/totals", "200")} <= routes
    assert ("/api/projects/{project_id}/totals", "404") in routes
    assert ("unmatched", "404") in routes
    assert not any("p1" in route or "such" in route for route, _ in routes)


def test_prometheus_scrapes_the_running_system(running_system: System, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: apt-get install prometheus (.ci/run does)"
    (port,) = free_ports(1)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{target}"]}]}
            for job, target in running_system.ports.items()
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    log = (tmp_path / "prometheus.log").open("ab")
    prometheus = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    def query(promql: str) -> list[dict[str, object]]:
        url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        try:
            answer = json.loads(get(url))
        except OSError:
            return []  # not listening yet
        assert answer["status"] == "success", answer
        return answer["data"]["result"]  # type: ignore[no-any-return]

    def value(promql: str) -> float:
        result = query(promql)
        return float(result[0]["value"][1]) if result else 0.0  # type: ignore[index]

    try:
        eventually(
            lambda: (
                {r["metric"]["job"]: r["value"][1] for r in query("up")}  # type: ignore[index]
                == {"ledger": "1", "api": "1", "display": "1"}
            ),
            timeout=60,
            what=f"every target up (log: {tmp_path / 'prometheus.log'})",
        )
        eventually(lambda: value("sum(ledger_events_applied_total)") >= 3 + GIFTS, what="ingest scraped")
        assert value('sum(ledger_events_applied_total{decision="posted"})') == GIFTS
        assert value("sum(ledger_writer_lease_held)") == 1
        assert value('sum(api_http_requests_total{route="/api/projects"})') >= 1
        assert value("count(display_connected_clients)") == 1
        # The rules loaded and were evaluated against the real series: a healthy system
        # raises none of them.
        rules = json.loads(get(f"http://127.0.0.1:{port}/api/v1/rules"))["data"]["groups"]
        assert {rule["name"] for group in rules for rule in group["rules"]} == set(alert_expressions())
        eventually(
            lambda: all(
                rule.get("lastEvaluation", "").startswith("2")
                for group in json.loads(get(f"http://127.0.0.1:{port}/api/v1/rules"))["data"]["groups"]
                for rule in group["rules"]
            ),
            what="every rule evaluated",
        )
        # (LedgerDown may be pending from an evaluation before the first scrape.)
        eventually(lambda: query("ALERTS") == [], timeout=15, what="no alert pending or firing")
    finally:
        stop_process(prometheus)


@pytest.mark.parametrize("where", ["alerts", "dashboard"])
def test_the_dashboard_and_the_alerts_use_only_metrics_the_services_export(
    running_system: System, where: str
) -> None:
    exported = set().union(*(exported_names(running_system.metrics(job)) for job in running_system.ports))
    exprs = list(alert_expressions().values()) if where == "alerts" else dashboard_expressions()
    named = set().union(*(metric_names(expr) for expr in exprs))
    assert named <= exported, sorted(named - exported)
