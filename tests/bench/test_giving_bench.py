"""The giving benchmark's arithmetic: the API's 2xx notifications from /metrics, and the
headline figures `make bench` takes from its report."""

from __future__ import annotations

from bench.giving import answered_2xx, ms_summary, notification_outcomes
from bench.suite import giving_figures

METRICS = """\
# HELP api_payment_notifications_total Payment notifications by outcome
# TYPE api_payment_notifications_total counter
api_payment_notifications_total{outcome="confirmed"} 120.0
api_payment_notifications_total{outcome="repeated"} 3.0
api_payment_notifications_total{outcome="not_paid"} 1.0
api_payment_notifications_total{outcome="mismatch"} 7.0
api_payment_notifications_total{outcome="unknown_order"} 2.0
# HELP api_payment_notifications_created Payment notifications by outcome
# TYPE api_payment_notifications_created gauge
api_payment_notifications_created{outcome="confirmed"} 1.7e+09
# HELP api_donation_limits_total Donation requests refused by a limit
# TYPE api_donation_limits_total counter
api_donation_limits_total{limit="per_client"} 50.0
"""


def test_the_api_notifications_are_read_by_outcome() -> None:
    assert notification_outcomes(METRICS) == {
        "confirmed": 120,
        "repeated": 3,
        "not_paid": 1,
        "mismatch": 7,
        "unknown_order": 2,
    }


def test_only_the_outcomes_answered_2xx_are_counted() -> None:
    assert answered_2xx(notification_outcomes(METRICS)) == 124


def test_no_notification_yet_counts_zero() -> None:
    text = "# HELP process_cpu_seconds_total x\n# TYPE process_cpu_seconds_total counter\n"
    assert notification_outcomes(text) == {} and answered_2xx({}) == 0


def test_latencies_are_summarised_in_milliseconds() -> None:
    assert ms_summary([0.010, 0.020, 0.030, 0.040]) == {"p50": 20.0, "p99": 40.0, "max": 40.0}
    assert ms_summary([]) == {"p50": None, "p99": None, "max": None}


def test_headline_figures_are_named_by_the_steady_rate() -> None:
    report = {
        "notification_to_journal": [
            {
                "rate_per_s": 200.0,
                "kept_up": True,
                "journaled_per_s": 199.6,
                "to_recorded_at_ms": {"p50": 31.0, "p99": 88.2, "max": 120.0},
                "to_seen_ms": {"p50": 52.0, "p99": 101.5, "max": 140.0},
            }
        ],
        "notifications": {"confirmed_2xx_per_s": 311.4},
        "donate_page": {"per_s": 402.0},
    }
    assert giving_figures(report) == {
        "giving_200_per_s_kept_up": True,
        "giving_200_per_s_journaled_per_s": 199.6,
        "giving_200_per_s_to_journal_p50_ms": 31.0,
        "giving_200_per_s_to_journal_p99_ms": 88.2,
        "giving_200_per_s_to_journal_seen_p99_ms": 101.5,
        "giving_notifications_confirmed_per_s": 311.4,
        "giving_donate_page_per_s": 402.0,
    }


def test_a_report_without_runs_adds_nothing() -> None:
    assert giving_figures({}) == {}
