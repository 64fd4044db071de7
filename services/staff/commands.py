"""`charity-ledger staff …`: accounts and machine tokens, made and ended by whoever runs the server.

There is no default password and no default account: the first administrator is
made here, on the server, by someone who can already reach its database.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console

from services.ledger.adapters.store import LedgerStore
from services.platform.db import make_engine
from services.staff.adapters.store import (
    StaffStore,
    TokenNameTaken,
    UnknownAccount,
    UnknownToken,
    UsernameTaken,
)
from services.staff.domain.machines import TOKEN_PREFIX, check_machine_name, parse_permissions
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


def token_add_command(
    database_url: str, name: str, permissions: list[str], console: Console | None = None
) -> int:
    """Make a named machine token and print it once. Exit status: 0 made, 1 name taken, 2 refused."""
    out = console or Console(highlight=False)
    try:
        check_machine_name(name)
        granted = parse_permissions(permissions)
    except ValueError as refused:
        out.print(f"refused: {refused}")
        return 2
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with _store(database_url) as store:
            LedgerStore(store.engine).migrate()
            store.add_machine_token(name, token, granted, _now_ms())
    except TokenNameTaken:
        out.print(f"refused: there is already a token {name!r} (names are never reused)")
        return 1
    out.print(f"made machine:{name} ({' '.join(sorted(p.value for p in granted))})")
    out.print("the token (shown once; only its hash is kept):")
    out.print(token, soft_wrap=True)
    return 0


def token_list_command(database_url: str, console: Console | None = None) -> int:
    out = console or Console(highlight=False)
    with _store(database_url) as store:
        for token in store.machine_tokens():
            state = "revoked" if token.revoked else "active"
            granted = " ".join(sorted(p.value for p in token.permissions))
            out.print(f"{token.name}\t{state}\t{granted}")
    return 0


def token_revoke_command(database_url: str, name: str, console: Console | None = None) -> int:
    """Revoke a token at once. Exit status: 0 done, 1 no such token."""
    out = console or Console(highlight=False)
    try:
        with _store(database_url) as store:
            store.revoke_machine_token(name, _now_ms())
    except UnknownToken:
        out.print(f"no token {name!r}")
        return 1
    out.print(f"revoked machine:{name}")
    return 0
