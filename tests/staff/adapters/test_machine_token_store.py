"""Machine tokens in the staff store, on SQLite and PostgreSQL: only a hash kept, names never reused."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.ledger.adapters.store import LedgerStore
from services.staff.adapters import tables as t
from services.staff.adapters.store import StaffStore, TokenNameTaken, UnknownToken, token_hash
from services.staff.domain.roles import Permission

pytestmark = pytest.mark.integration  # needs the PostgreSQL server
TOKEN = "clm_" + "k" * 43


@pytest.fixture
def staff(store: LedgerStore) -> StaffStore:
    """The staff store on the ledger's migrated database (SQLite, then PostgreSQL)."""
    return StaffStore(store.engine)


def test_a_token_is_found_by_its_hash_until_revoked(staff: StaffStore) -> None:
    granted = frozenset({Permission.REPORT_PROGRESS, Permission.RUN_FUNDRAISING})
    staff.add_machine_token("reports", TOKEN, granted, 1_000)
    with staff.engine.connect() as conn:
        stored = conn.execute(select(t.machine_tokens)).one()
    assert stored.token_hash == token_hash(TOKEN) and TOKEN not in tuple(map(str, stored))
    found = staff.machine_token(TOKEN)
    assert found is not None and (found.name, found.permissions, found.revoked) == ("reports", granted, False)
    assert staff.machine_token(TOKEN[:-1]) is None

    staff.revoke_machine_token("reports", 2_000)
    staff.revoke_machine_token("reports", 3_000)  # twice is harmless; the first time stands
    assert staff.machine_token(TOKEN) is None
    [listed] = staff.machine_tokens()
    assert (listed.revoked_at_ms, listed.permissions) == (2_000, granted)
    with pytest.raises(UnknownToken):
        staff.revoke_machine_token("nobody", 4_000)


def test_names_and_tokens_are_never_taken_twice(staff: StaffStore) -> None:
    staff.add_machine_token("feeds", TOKEN, frozenset({Permission.MANAGE_VENUES}), 1)
    with pytest.raises(TokenNameTaken):
        staff.add_machine_token("feeds", "clm_other", frozenset({Permission.MANAGE_VENUES}), 2)
    with pytest.raises(TokenNameTaken):
        staff.add_machine_token("other", TOKEN, frozenset({Permission.MANAGE_VENUES}), 2)
    assert [m.name for m in staff.machine_tokens()] == ["feeds"]
