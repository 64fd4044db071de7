"""deploy/monitoring: the alert rules pass promtool's check and their unit tests, and the
PromQL in them and in the Grafana dashboard names metrics the way the services spell them."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.monitoring.metric_names import (
    ALERTS,
    MONITORING,
    alert_expressions,
    dashboard_expressions,
    exported_names_in_process,
    metric_names,
    promtool,
)


def test_promql_metric_names_are_told_from_functions_labels_and_keywords() -> None:
    expr = (
        'sum without (topic, partition) (rate(a_total{status=~"5..", route="/x"}[5m:30s])) '
        "/ on (job) b and time() - c_seconds > 600 or histogram_quantile(0.9, d_bucket)"
    )
    assert metric_names(expr) == {"a_total", "b", "c_seconds", "d_bucket"}


def test_the_alert_rules_pass_promtool_check_rules() -> None:
    checked = promtool("check", "rules", ALERTS.name)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(alert_expressions())} rules found" in checked.stdout


def test_the_alert_rules_pass_their_unit_tests() -> None:
    tested = promtool("test", "rules", "alerts_test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout


def test_every_alert_is_unit_tested_and_has_a_runbook_section() -> None:
    tests = yaml.safe_load((MONITORING / "alerts_test.yml").read_text(encoding="utf-8"))["tests"]
    firing = {
        case["alertname"] for test in tests for case in test["alert_rule_test"] if case.get("exp_alerts")
    }
    assert firing == set(alert_expressions())
    runbook = (MONITORING.parents[1] / "docs" / "operations.md").read_text(encoding="utf-8")
    for alert in alert_expressions():
        assert re.search(rf"^#+ {alert}$", runbook, re.MULTILINE), f"no section {alert} in the runbook"


@pytest.mark.parametrize("where", ["alerts", "dashboard"])
def test_the_promql_names_metrics_by_their_exported_names(where: str) -> None:
    """Counters end in _total, histograms are read through _bucket/_sum/_count: a name
    written as the Python object's (without the suffix) would select nothing."""
    exprs = list(alert_expressions().values()) if where == "alerts" else dashboard_expressions()
    assert exprs
    names = set().union(*(metric_names(expr) for expr in exprs))
    exported = exported_names_in_process()
    assert names <= exported, sorted(names - exported)
