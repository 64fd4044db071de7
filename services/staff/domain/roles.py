"""Who may do what: roles, the permissions they grant, and the scope each permission is checked in.

Kept as data, so the authorization-matrix test and the docs read the same table
the routes are checked against.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Role(StrEnum):
    ADMINISTRATOR = "administrator"
    PROJECT_MANAGER = "project_manager"
    FINANCE_OFFICER = "finance_officer"
    AUDITOR = "auditor"
    VENUE_OPERATOR = "venue_operator"


# Short names the command line accepts besides the full ones.
ROLE_ALIASES: Mapping[str, Role] = {
    "admin": Role.ADMINISTRATOR,
    "manager": Role.PROJECT_MANAGER,
    "finance": Role.FINANCE_OFFICER,
    "operator": Role.VENUE_OPERATOR,
}


def parse_role(name: str) -> Role:
    """A role by its name or alias; ValueError names the accepted ones."""
    if name in ROLE_ALIASES:
        return ROLE_ALIASES[name]
    try:
        return Role(name)
    except ValueError:
        known = ", ".join([*(r.value for r in Role), *ROLE_ALIASES])
        raise ValueError(f"unknown role {name!r}; one of: {known}") from None


class Permission(StrEnum):
    VIEW_CONSOLE = "console.view"
    READ_ACCESS_LOG = "access_log.read"
    MANAGE_STAFF = "staff.manage"
    REGISTER_PROJECT = "project.register"
    APPROVE_PROJECT = "project.approve"
    RUN_FUNDRAISING = "project.fundraising"
    REPORT_PROGRESS = "project.report"  # progress reports and correction notes
    SUSPEND_PROJECT = "project.suspend"  # suspend and resume
    CLOSE_PROJECT = "project.close"  # close with a leftover disposition
    REQUEST_DISBURSEMENT = "disbursement.request"
    APPROVE_DISBURSEMENT = "disbursement.approve"  # approve or reject; never one's own request
    PAY_DISBURSEMENT = "disbursement.pay"  # mark paid with the bank or provider reference
    ATTACH_EVIDENCE = "disbursement.evidence"
    REFUND_DONATION = "donation.refund"
    RESOLVE_SUSPENSE = "suspense.resolve"  # redirect or refund; a second person approves
    RECORD_TILL = "till.record"  # cash-box counts and charity sales at a venue
    MANAGE_VENUES = "venue.manage"
    MODERATE_DISPLAY = "venue.moderate"  # donor messages and names on the screens
    AUDIT = "audit.read"  # the closed-loop views, charts, exports, statements and reports


class Scope(StrEnum):
    """Where a permission holds for a person whose role is scoped."""

    EVERYWHERE = "everywhere"
    PROJECT = "project"  # only on the projects the person is assigned to
    VENUE = "venue"  # only at the person's venues


# What each role may do. The auditor reads everything and changes nothing; approving
# a project is the administrator's alone, so the manager who registered a project
# never approves it too.
GRANTS: Mapping[Role, frozenset[Permission]] = {
    Role.ADMINISTRATOR: frozenset(Permission),
    Role.PROJECT_MANAGER: frozenset(
        {
            Permission.VIEW_CONSOLE,
            Permission.REGISTER_PROJECT,
            Permission.RUN_FUNDRAISING,
            Permission.REPORT_PROGRESS,
            Permission.REQUEST_DISBURSEMENT,
            Permission.ATTACH_EVIDENCE,
            Permission.AUDIT,  # their own projects' books only (scoped)
        }
    ),
    # Finance approves and pays what managers request, so no one person both asks and approves.
    Role.FINANCE_OFFICER: frozenset(
        {
            Permission.VIEW_CONSOLE,
            Permission.APPROVE_DISBURSEMENT,
            Permission.PAY_DISBURSEMENT,
            Permission.ATTACH_EVIDENCE,
            Permission.REFUND_DONATION,
            Permission.RESOLVE_SUSPENSE,
        }
    ),
    Role.AUDITOR: frozenset({Permission.VIEW_CONSOLE, Permission.READ_ACCESS_LOG, Permission.AUDIT}),
    Role.VENUE_OPERATOR: frozenset(
        {
            Permission.VIEW_CONSOLE,
            Permission.RECORD_TILL,
            Permission.MANAGE_VENUES,
            Permission.MODERATE_DISPLAY,
        }
    ),
}

# Roles whose grants hold only within their assignments, and which assignments.
SCOPED_ROLES: Mapping[Role, Scope] = {
    Role.PROJECT_MANAGER: Scope.PROJECT,
    Role.VENUE_OPERATOR: Scope.VENUE,
}

USERNAME = re.compile(r"[a-z][a-z0-9_.-]{1,31}\Z")


def check_username(username: str) -> str:
    # No colon: actors named "machine:…" are machine clients, never people.
    if not USERNAME.match(username):
        raise ValueError("a username is 2-32 of a-z 0-9 _ . - starting with a letter")
    return username


@dataclass(frozen=True)
class Person:
    """An authenticated member of staff: whose name goes into events as the actor."""

    username: str
    role: Role
    projects: frozenset[str] = field(default_factory=frozenset)
    venues: frozenset[str] = field(default_factory=frozenset)


def allows(
    person: Person, permission: Permission, *, project_id: str | None = None, venue_id: str | None = None
) -> bool:
    """Whether the person may do this, here. A scoped role needs the object named and assigned."""
    if permission not in GRANTS[person.role]:
        return False
    scope = SCOPED_ROLES.get(person.role, Scope.EVERYWHERE)
    if scope is Scope.PROJECT and project_id is not None:
        return project_id in person.projects
    if scope is Scope.VENUE and venue_id is not None:
        return venue_id in person.venues
    return True
