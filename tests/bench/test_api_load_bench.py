"""The API load benchmark's pure parts: its runs' figures, and what `make bench` takes of them."""

from __future__ import annotations

import argparse

import pytest

from bench.api_load import parse_processes, run_report
from bench.end_to_end import Posted
from bench.suite import api_load_figures


def posted(index: int, status: int, latency_s: float, behind_s: float = 0.0) -> Posted:
    scheduled = 100.0 + index * 0.01
    sent = scheduled + behind_s
    return Posted(index, "p", scheduled, sent, sent + latency_s, status, "e" if status == 202 else None)


def test_a_run_counts_only_the_202s_and_its_cpu_as_cores() -> None:
    posts = [posted(i, 202, 0.010) for i in range(99)] + [posted(99, 503, 0.5)]
    report = run_report(
        2,
        1000.0,
        posts,
        elapsed=2.0,
        cpu_used={"api_1": 0.6, "api_2": 0.5, "ledger": 1.0, "poster": 0.2},
        machine_busy_s=3.0,
        load=(1.5, 2.5),
    )
    assert report["api_processes"] == 2
    assert report["posted"] == 100
    assert report["accepted_202"] == 99
    assert report["achieved_rate_per_s"] == 49.5
    assert report["api_202_ms"]["p50"] == pytest.approx(10.0)
    assert report["cpu_per_s"] == {"api_1": 0.3, "api_2": 0.25, "ledger": 0.5, "poster": 0.1}
    assert report["machine_cpu_busy_per_s"] == 1.5
    assert report["others_cpu_per_s"] == pytest.approx(0.35)
    assert (report["load_average_before"], report["load_average_after"]) == (1.5, 2.5)


def test_the_rest_of_the_machine_is_never_negative() -> None:
    # /proc's ticks are coarse: the processes measured can add up to a little more than the machine.
    report = run_report(1, 100.0, [posted(0, 202, 0.01)], 1.0, {"api_1": 1.01}, 1.0, (0.0, 0.0))
    assert report["others_cpu_per_s"] == 0.0


def test_processes_is_a_list_of_counts_of_at_least_one() -> None:
    assert parse_processes("1,2") == [1, 2]
    assert parse_processes("2,1") == [2, 1]
    for bad in ("", "0,2", "-1"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_processes(bad)


def test_headline_figures_are_named_by_the_number_of_api_processes() -> None:
    report = {
        "runs": [
            {
                "api_processes": n,
                "rate_per_s": 1500.0,
                "achieved_rate_per_s": rate,
                "api_202_ms": {"p50": 8.0, "p99": 40.0, "max": 60.0},
                "cpu_per_s": {"api_1": 0.5, "api_2": 0.25 if n == 2 else 0.0, "ledger": 0.5, "broker": 0.25},
                "machine_cpu_busy_per_s": 1.9,
                "others_cpu_per_s": 0.1,
            }
            for n, rate in ((1, 900.0), (2, 1000.0))
        ]
    }
    figures = api_load_figures(report)
    assert figures["api_1_processes_achieved_per_s"] == 900.0
    assert figures["api_2_processes_achieved_per_s"] == 1000.0
    assert figures["api_1_processes_api_cpu_cores"] == 0.5
    assert figures["api_2_processes_api_cpu_cores"] == 0.75
    assert figures["api_2_processes_202_p99_ms"] == 40.0
    assert figures["api_2_processes_others_cpu_cores"] == 0.1
    assert api_load_figures({}) == {}
