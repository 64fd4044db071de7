"""The headline figures `make bench` takes from the display benchmarks' reports."""

from __future__ import annotations

from bench.suite import display_figures


def test_headline_figures_are_named_by_screens_rate_and_coalescing() -> None:
    display = {
        "fanout": {
            "runs": [
                {
                    "clients": 10000,
                    "last_client_ms": {"p50": 120.0, "p99": 235.0, "max": 240.0},
                    "gateway_rss_mib": 231.0,
                    "delivered_fraction": 1.0,
                }
            ]
        }
    }
    e2e = {
        "runs": [
            {
                "coalesce_ms": 250,
                "rate_per_s": 1000,
                "achieved_rate_per_s": 995.0,
                "screen_ms": {"p50": 145.5, "p99": 273.7, "max": 355.4},
            }
        ]
    }
    assert display_figures(display, e2e) == {
        "fanout_10000_last_client_p99_ms": 235.0,
        "fanout_10000_gateway_rss_mib": 231.0,
        "fanout_10000_delivered_fraction": 1.0,
        "e2e_1000_per_s_coalesce_250ms_achieved_per_s": 995.0,
        "e2e_1000_per_s_coalesce_250ms_p50_ms": 145.5,
        "e2e_1000_per_s_coalesce_250ms_p99_ms": 273.7,
    }


def test_a_report_without_runs_adds_nothing() -> None:
    assert display_figures({}, {}) == {}
