"""Roles and permissions: what each role may do, and where."""

from __future__ import annotations

import pytest

from services.staff.domain.roles import (
    GRANTS,
    Permission,
    Person,
    Role,
    allows,
    check_username,
    parse_role,
)

ADMIN = Person("ada", Role.ADMINISTRATOR)
MANAGER = Person("min", Role.PROJECT_MANAGER, projects=frozenset({"meals"}))
FINANCE = Person("fay", Role.FINANCE_OFFICER)
AUDITOR = Person("aud", Role.AUDITOR)
OPERATOR = Person("ops", Role.VENUE_OPERATOR, venues=frozenset({"hall-1"}))


def test_the_administrator_may_do_everything_everywhere() -> None:
    for permission in Permission:
        assert allows(ADMIN, permission, project_id="any", venue_id="any")


def test_a_project_manager_runs_only_their_own_projects() -> None:
    assert allows(MANAGER, Permission.RUN_FUNDRAISING, project_id="meals")
    assert not allows(MANAGER, Permission.RUN_FUNDRAISING, project_id="books")
    # A new project belongs to nobody yet: registering one is not scoped.
    assert allows(MANAGER, Permission.REGISTER_PROJECT)
    assert not allows(MANAGER, Permission.APPROVE_PROJECT, project_id="meals")


def test_the_auditor_reads_everything_and_changes_nothing() -> None:
    assert allows(AUDITOR, Permission.READ_ACCESS_LOG)
    assert allows(AUDITOR, Permission.VIEW_CONSOLE)
    assert allows(AUDITOR, Permission.AUDIT, project_id="meals")
    reads = {Permission.VIEW_CONSOLE, Permission.READ_ACCESS_LOG, Permission.AUDIT}
    assert not any(allows(AUDITOR, p, project_id="meals") for p in set(Permission) - reads)


def test_a_manager_audits_only_their_own_projects_and_others_not_at_all() -> None:
    assert allows(MANAGER, Permission.AUDIT, project_id="meals")
    assert not allows(MANAGER, Permission.AUDIT, project_id="books")
    assert not allows(FINANCE, Permission.AUDIT, project_id="meals")
    assert not allows(OPERATOR, Permission.AUDIT, project_id="meals")


def test_finance_and_venue_operators_change_no_project() -> None:
    for person in (FINANCE, OPERATOR):
        for permission in (
            Permission.REGISTER_PROJECT,
            Permission.APPROVE_PROJECT,
            Permission.RUN_FUNDRAISING,
        ):
            assert not allows(person, permission, project_id="meals")


def test_a_venue_operator_is_scoped_to_their_venues() -> None:
    assert allows(OPERATOR, Permission.VIEW_CONSOLE, venue_id="hall-1")
    assert not allows(OPERATOR, Permission.VIEW_CONSOLE, venue_id="hall-2")


def test_every_role_has_its_grants_and_the_console() -> None:
    assert set(GRANTS) == set(Role)
    assert all(Permission.VIEW_CONSOLE in granted for granted in GRANTS.values())


def test_roles_by_name_or_alias() -> None:
    assert parse_role("admin") is Role.ADMINISTRATOR
    assert parse_role("auditor") is Role.AUDITOR
    with pytest.raises(ValueError, match="unknown role"):
        parse_role("root")


@pytest.mark.parametrize("name", ["a", "Admin", "machine:automation", "x" * 33, "1abc", "ab cd"])
def test_usernames_that_could_be_confused_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        check_username(name)


def test_a_plain_username_is_accepted() -> None:
    assert check_username("wang.xiaoming") == "wang.xiaoming"
