"""`charity-ledger staff …`: accounts made and disabled by whoever runs the server.

There is no default password and no default account: the first administrator is
made here, on the server, by someone who can already reach its database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

from services.ledger.adapters.store import LedgerStore
from services.platform.db import make_engine
from services.staff.adapters.store import StaffStore, UnknownAccount, UsernameTaken
from services.staff.domain.passwords import WeakPassword, check_password
from services.staff.domain.roles import check_username, parse_role
from services.staff.hashing import hash_password


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@contextmanager
def _store(database_url: str) -> Iterator[StaffStore]:
    engine = make_engine(database_url)
    try:
        yield StaffStore(engine)
    finally:
        engine.dispose()


def add_command(
    database_url: str,
    username: str,
    role_name: str,
    read_password: Callable[[], str],
    *,
    projects: list[str] | None = None,
    venues: list[str] | None = None,
    console: Console | None = None,
) -> int:
    """Make an account. Exit status: 0 made, 1 the username is taken, 2 bad username, role or password."""
    out = console or Console(highlight=False)
    try:
        check_username(username)
        role = parse_role(role_name)
        password = read_password()
        check_password(password, username)
    except (WeakPassword, ValueError) as refused:
        out.print(f"refused: {refused}")
        return 2
    try:
        with _store(database_url) as store:
            # The tables may not exist yet on a fresh installation: the first account comes first.
            LedgerStore(store.engine).migrate()
            store.add_account(
                username,
                role,
                hash_password(password),
                _now_ms(),
                projects=frozenset(projects or ()),
                venues=frozenset(venues or ()),
            )
    except UsernameTaken:
        out.print(f"refused: there is already an account {username!r}")
        return 1
    out.print(f"made {username} ({role.value})")
    return 0


def list_command(database_url: str, console: Console | None = None) -> int:
    out = console or Console(highlight=False)
    with _store(database_url) as store:
        for account in store.accounts():
            person = account.person
            scope = ", ".join(
                [
                    *(f"project:{p}" for p in sorted(person.projects)),
                    *(f"venue:{v}" for v in sorted(person.venues)),
                ]
            )
            state = "disabled" if account.disabled else "active"
            out.print(f"{person.username}\t{person.role.value}\t{state}\t{scope}")
    return 0


def disable_command(database_url: str, username: str, console: Console | None = None) -> int:
    """Disable an account and end its sessions. Exit status: 0 done, 1 no such account."""
    out = console or Console(highlight=False)
    try:
        with _store(database_url) as store:
            store.disable(username, _now_ms())
    except UnknownAccount:
        out.print(f"no account {username!r}")
        return 1
    out.print(f"disabled {username}; their sessions have ended")
    return 0
