from datetime import UTC, datetime, timedelta

from services.ledger.domain.disclosure import is_overdue, next_disclosure_due
from services.ledger.domain.state import ProjectStatus, ProjectTotals

OPENED = datetime(2026, 1, 10, tzinfo=UTC)


def project(**plan: object) -> ProjectTotals:
    base = {"starts_on": "2026-01-01", "ends_on": "2026-03-31", "emergency": False}
    return ProjectTotals(
        project_id="p", status=ProjectStatus.FUNDRAISING, plan={**base, **plan}, opened_at=OPENED
    )


def test_emergency_appeals_disclose_every_five_days() -> None:
    due, rule = next_disclosure_due(project(emergency=True))
    assert due == OPENED + timedelta(days=5) and "5 days" in rule


def test_long_projects_disclose_quarterly_counting_from_the_last_disclosure() -> None:
    p = project(ends_on="2026-12-31")
    assert next_disclosure_due(p)[0] == OPENED + timedelta(days=91)
    p.last_disclosure_at = datetime(2026, 4, 1, tzinfo=UTC)
    assert next_disclosure_due(p)[0] == datetime(2026, 7, 1, tzinfo=UTC)
    assert is_overdue(p, datetime(2026, 7, 2, tzinfo=UTC)) and not is_overdue(
        p, datetime(2026, 6, 30, tzinfo=UTC)
    )


def test_short_projects_disclose_within_three_months_of_the_end() -> None:
    due, rule = next_disclosure_due(project())
    assert due == datetime(2026, 3, 31, tzinfo=UTC) + timedelta(days=92) and "end" in rule


def test_closed_projects_report_leftovers_within_three_months() -> None:
    p = project()
    p.status, p.closed_at = ProjectStatus.CLOSED, datetime(2026, 5, 1, tzinfo=UTC)
    assert next_disclosure_due(p)[0] == datetime(2026, 8, 1, tzinfo=UTC)


def test_nothing_is_due_before_fundraising() -> None:
    p = project()
    p.opened_at = None
    assert next_disclosure_due(p) == (None, "not fundraising yet")
