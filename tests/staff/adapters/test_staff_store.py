"""The staff store's contract, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy.exc
from sqlalchemy import delete, text, update

from services.ledger.adapters.store import LedgerStore
from services.platform.db import make_engine
from services.staff.adapters import tables as t
from services.staff.adapters.store import AccessRecord, StaffStore, UnknownAccount, UsernameTaken
from services.staff.domain.roles import Role
from services.staff.hashing import hash_password, verify_password

pytestmark = pytest.mark.integration  # needs the PostgreSQL server

HOUR_MS = 3_600_000


@pytest.fixture
def staff(db_url: str) -> Iterator[StaffStore]:
    engine = make_engine(db_url)
    LedgerStore(engine).migrate()
    yield StaffStore(engine)
    engine.dispose()


def test_an_account_keeps_its_role_scopes_and_argon2id_hash(staff: StaffStore) -> None:
    staff.add_account(
        "min", Role.PROJECT_MANAGER, hash_password("long enough secret"), 1_000, projects=frozenset({"meals"})
    )
    account = staff.account("min")
    assert account is not None
    assert account.person.role is Role.PROJECT_MANAGER and account.person.projects == {"meals"}
    assert account.password_hash.startswith("$argon2id$")
    assert verify_password(account.password_hash, "long enough secret")
    assert not verify_password(account.password_hash, "long enough secreT")
    staff.assign("min", project_id="books")
    staff.assign("min", project_id="books")  # twice is harmless
    assert staff.account("min").person.projects == {"meals", "books"}  # type: ignore[union-attr]


def test_usernames_are_never_taken_twice(staff: StaffStore) -> None:
    staff.add_account("ada", Role.ADMINISTRATOR, hash_password("long enough secret"), 1)
    with pytest.raises(UsernameTaken):
        staff.add_account("ada", Role.AUDITOR, hash_password("another long secret"), 2)
    assert [a.person.username for a in staff.accounts()] == ["ada"]


def test_failures_count_up_and_a_success_resets_them(staff: StaffStore) -> None:
    staff.add_account("ada", Role.ADMINISTRATOR, hash_password("long enough secret"), 1)
    for at in (10, 20, 30):
        staff.record_failure("ada", at)
    account = staff.account("ada")
    assert account is not None and (account.failed_attempts, account.last_failure_ms) == (3, 30)
    staff.record_success("ada")
    account = staff.account("ada")
    assert account is not None and (account.failed_attempts, account.last_failure_ms) == (0, None)


def test_sessions_end_at_expiry_after_idling_and_on_log_out(staff: StaffStore) -> None:
    staff.add_account("ada", Role.ADMINISTRATOR, hash_password("long enough secret"), 1)
    staff.start_session("ada", "token-a", now_ms=0, lifetime_ms=8 * HOUR_MS)
    idle = 30 * 60_000
    # Each request within the idle time keeps it alive, up to its lifetime.
    at = 0
    while at + idle - 1 < 8 * HOUR_MS:
        at += idle - 1
        person = staff.session_person("token-a", at, idle)
        assert person is not None and person.username == "ada"
    assert staff.session_person("token-a", 8 * HOUR_MS, idle) is None
    staff.start_session("ada", "token-b", now_ms=0, lifetime_ms=8 * HOUR_MS)
    assert staff.session_person("token-b", idle, idle) is None  # idle too long
    staff.start_session("ada", "token-c", now_ms=0, lifetime_ms=8 * HOUR_MS)
    staff.end_session("token-c")
    assert staff.session_person("token-c", 1, idle) is None
    assert staff.session_person("never-issued", 1, idle) is None


def test_only_a_hash_of_the_session_token_is_stored(staff: StaffStore) -> None:
    staff.add_account("ada", Role.ADMINISTRATOR, hash_password("long enough secret"), 1)
    staff.start_session("ada", "the-secret-token", now_ms=0, lifetime_ms=HOUR_MS)
    with staff.engine.connect() as conn:
        stored = conn.execute(text("SELECT token_hash FROM staff_sessions")).scalars().all()
    assert len(stored) == 1 and "the-secret-token" not in stored[0] and len(stored[0]) == 64


def test_disabling_ends_every_session_at_once(staff: StaffStore) -> None:
    staff.add_account("ada", Role.ADMINISTRATOR, hash_password("long enough secret"), 1)
    staff.start_session("ada", "t1", now_ms=0, lifetime_ms=HOUR_MS)
    staff.disable("ada", 5)
    assert staff.session_person("t1", 6, HOUR_MS) is None
    account = staff.account("ada")
    assert account is not None and account.disabled
    with pytest.raises(UnknownAccount):
        staff.disable("nobody", 7)


def test_the_access_log_is_append_only(staff: StaffStore) -> None:
    first = AccessRecord(1, None, "login", "POST /staff/login", "refused", "10.0.0.1", "unknown username")
    second = AccessRecord(2, "ada", "login", "POST /staff/login", "allowed", "10.0.0.1")
    staff.log(first)
    staff.log(second)
    assert staff.access_log() == [second, first]
    for change in (update(t.access_log).values(decision="allowed"), delete(t.access_log)):
        with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"), staff.engine.begin() as conn:
            conn.execute(change)
    assert staff.access_log() == [second, first]
