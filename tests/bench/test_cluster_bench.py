"""The cluster benchmark's pure parts: its options, what the rest of the machine used, its figures."""

from __future__ import annotations

import pytest

from bench.cluster import SetupResult, load_average, parse_args, summary_figures
from services.platform.kafka_admin import Replication


def result(setup: str, rate: float, replication: Replication, **cores: float | None) -> SetupResult:
    return SetupResult(
        setup=setup,
        nodes=replication.factor,
        replication=replication,
        events_per_s=rate,
        quarters=[rate] * 4,
        produce_per_s=2 * rate,
        ledger_cores=cores.get("ledger", 0.5),
        broker_cores=cores.get("brokers", 0.25),
        machine_cores=cores.get("machine", 1.5),
        load_before=1.0,
        load_after=2.0,
        peak_rss_mb=300.0,
    )


def test_the_rest_of_the_machine_is_what_neither_ledger_nor_brokers_used() -> None:
    r = result("single", 1000.0, Replication(), ledger=0.75, brokers=0.5, machine=1.75)
    assert r.others_cores == pytest.approx(0.5)
    assert r.ledger_cpu_us_per_event == pytest.approx(750.0)
    assert r.broker_cpu_us_per_event == pytest.approx(500.0)


def test_unknown_cpu_gives_no_figure_rather_than_a_guess() -> None:
    assert result("single", 1000.0, Replication(), brokers=None).others_cores is None
    assert result("single", 1000.0, Replication(), ledger=None).ledger_cpu_us_per_event is None


def test_figures_name_each_setup_and_compare_the_cluster_with_one_broker() -> None:
    figures = summary_figures(
        [result("single", 8000.0, Replication()), result("cluster", 6000.0, Replication(3, 2))],
        50_000,
        "sqlite",
    )
    assert figures["ingest_single_rf"] == 1
    assert figures["ingest_cluster_rf"] == 3
    assert figures["ingest_cluster_min_insync"] == 2
    assert figures["ingest_single_events_per_s"] == 8000.0
    assert figures["ingest_cluster_events_per_s"] == 6000.0
    assert figures["ingest_cluster_vs_single"] == pytest.approx(0.75)
    assert figures["cluster_bench_backend"] == "sqlite"


def test_one_setup_alone_has_no_comparison() -> None:
    figures = summary_figures([result("cluster", 6000.0, Replication(3, 2))], 50_000, "sqlite")
    assert "ingest_cluster_vs_single" not in figures
    assert "ingest_single_events_per_s" not in figures


def test_load_average_is_the_one_minute_figure() -> None:
    assert load_average("14.21 9.80 6.02 3/912 12345\n") == 14.21


def test_order_takes_each_setup_once() -> None:
    assert parse_args(["--order", "cluster,single"]).order == ["cluster", "single"]
    with pytest.raises(SystemExit):
        parse_args(["--order", "single,single"])
    with pytest.raises(SystemExit):
        parse_args(["--order", "three"])
