"""The benchmark's arithmetic: drain rates, peak RSS and CPU from /proc text, the summary line."""

from __future__ import annotations

import json
import math

import pytest

from bench.measure import (
    Drain,
    machine_busy_seconds,
    peak_rss_mb,
    process_cpu_seconds,
    rates_by_part,
    summary_line,
    sustained_drain,
)


def test_the_rate_runs_from_the_first_observed_commit_to_done() -> None:
    samples = [(10.0, 300), (10.5, 800), (11.0, 1300), (12.5, 2300)]
    drain = sustained_drain(samples, baseline=300, done=(13.0, 2300))
    # The first batch (500) was committed before it could be seen: it is not counted.
    assert drain == Drain(events=1500, seconds=2.5)
    assert drain.per_s == 600


def test_a_drain_needs_progress_after_the_first_observation() -> None:
    with pytest.raises(ValueError, match="no progress"):
        sustained_drain([(1.0, 300)], baseline=300, done=(2.0, 300))
    with pytest.raises(ValueError, match="first observed batch"):
        sustained_drain([(1.0, 0), (1.2, 500)], baseline=0, done=(1.2, 500))


def test_peak_rss_is_vmhwm_in_mib() -> None:
    status = "Name:\tpython3\nVmPeak:\t  999999 kB\nVmHWM:\t  131072 kB\nVmRSS:\t  100000 kB\n"
    assert peak_rss_mb(status) == 128.0
    with pytest.raises(ValueError):
        peak_rss_mb("Name:\tpython3\n")


def test_process_cpu_counts_user_and_system_time_after_the_command_name() -> None:
    # A command name with a space and a parenthesis must not shift the fields.
    fields = ["S", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "250", "50"] + ["0"] * 39
    stat = "4242 (python3 (x) y) " + " ".join(fields)
    assert process_cpu_seconds(stat, ticks_per_s=100) == 3.0


def test_machine_busy_excludes_idle_and_iowait() -> None:
    stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n"
    assert machine_busy_seconds(stat, ticks_per_s=100) == (1.5, 10.0)


def test_the_summary_is_one_json_line_with_rounded_figures() -> None:
    line = summary_line({"sqlite_events_per_s": 2534.126, "raw": math.nan, "events": 100, "tag": None})
    assert "\n" not in line
    assert json.loads(line) == {"sqlite_events_per_s": 2534.13, "raw": None, "events": 100, "tag": None}


def test_rates_by_part_show_whether_the_rate_holds() -> None:
    samples = [(0.0, 0), (1.0, 1000), (2.0, 2000), (3.0, 2500), (4.0, 3000)]
    assert rates_by_part(samples, 2) == [1000.0, 500.0]
    assert rates_by_part(samples[:1]) == []
