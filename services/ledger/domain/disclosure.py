"""The disclosure clock (Charity Law, amended 2023, Art. 72 and 79; measures in force 2026-01-01).

- emergency appeals disclose every 5 days;
- projects planned to run over 6 months disclose at least every 3 months;
- every project discloses in full within 3 months of its end, and reports its
  leftover funds within 3 months of closing.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from services.ledger.domain.state import ProjectStatus, ProjectTotals

EMERGENCY_EVERY = timedelta(days=5)
LONG_PROJECT = timedelta(days=183)  # "over 6 months"
LONG_PROJECT_EVERY = timedelta(days=91)  # "at least every 3 months"
AFTER_END = timedelta(days=92)  # "within 3 months"


def _as_utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(value: str | None) -> datetime | None:
    if not value:
        return None
    return datetime.combine(date.fromisoformat(value), datetime.min.time(), tzinfo=UTC)


def next_disclosure_due(project: ProjectTotals) -> tuple[datetime | None, str]:
    """When the next disclosure is due, and why; (None, reason) if none is due."""
    if project.status == ProjectStatus.CLOSED and project.closed_at is not None:
        return _as_utc(project.closed_at) + AFTER_END, "full disclosure and leftover report after closing"
    if project.opened_at is None:
        return None, "not fundraising yet"
    since = _as_utc(project.last_disclosure_at or project.opened_at)
    if project.plan.get("emergency"):
        return since + EMERGENCY_EVERY, "emergency appeal: every 5 days"
    starts, ends = _day(project.plan.get("starts_on")), _day(project.plan.get("ends_on"))
    if starts and ends and ends - starts > LONG_PROJECT:
        periodic = since + LONG_PROJECT_EVERY
        final = ends + AFTER_END
        return (
            (periodic, "runs over 6 months: every 3 months")
            if periodic < final
            else (final, "final disclosure")
        )
    if ends is not None:
        return ends + AFTER_END, "full disclosure within 3 months of the end"
    return None, "no end date in the plan"


def is_overdue(project: ProjectTotals, now: datetime) -> bool:
    due, _ = next_disclosure_due(project)
    return due is not None and now > due
