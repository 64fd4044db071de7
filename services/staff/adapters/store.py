"""The staff store: accounts and their scopes, failed-attempt counters, sessions, the access log.

Every method is one short transaction, so several API processes can share it:
a session is valid in whichever process the next request reaches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from services.staff.adapters import tables as t
from services.staff.domain.roles import Permission, Person, Role


class UsernameTaken(Exception):
    """An account with this username exists (disabled ones too: names are never reused)."""


class UnknownAccount(Exception):
    pass


class TokenNameTaken(Exception):
    """A machine token of this name exists (revoked ones too: names are never reused)."""


class UnknownToken(Exception):
    pass


@dataclass(frozen=True)
class Account:
    person: Person
    password_hash: str
    created_at_ms: int
    disabled_at_ms: int | None
    failed_attempts: int
    last_failure_ms: int | None

    @property
    def disabled(self) -> bool:
        return self.disabled_at_ms is not None


@dataclass(frozen=True)
class MachineToken:
    """A machine client's named token, as stored: never the token itself."""

    name: str
    permissions: frozenset[Permission]
    created_at_ms: int
    revoked_at_ms: int | None
    token_hash: str = ""

    @property
    def revoked(self) -> bool:
        return self.revoked_at_ms is not None


@dataclass(frozen=True)
class AccessRecord:
    at_ms: int
    actor: str | None  # a username, "machine:<name>", or None: nobody authenticated
    action: str  # e.g. login, logout, access, personal_data
    target: str  # what was asked for: a path, an account
    decision: str  # allowed | refused
    client: str  # from where: the client's address
    detail: str = ""


def token_hash(token: str) -> str:
    """Session tokens are 256 random bits: a plain SHA-256 cannot be reversed, no key needed."""
    return hashlib.sha256(token.encode()).hexdigest()


class StaffStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- accounts ------------------------------------------------------------

    def add_account(
        self,
        username: str,
        role: Role,
        password_hash: str,
        now_ms: int,
        *,
        projects: frozenset[str] = frozenset(),
        venues: frozenset[str] = frozenset(),
    ) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t.staff_accounts).values(
                        username=username,
                        role=role.value,
                        password_hash=password_hash,
                        created_at_ms=now_ms,
                        failed_attempts=0,
                    )
                )
                for kind, ids in (("project", projects), ("venue", venues)):
                    for scope_id in sorted(ids):
                        conn.execute(
                            insert(t.staff_scopes).values(username=username, kind=kind, scope_id=scope_id)
                        )
        except IntegrityError:
            raise UsernameTaken(username) from None

    def assign(self, username: str, *, project_id: str | None = None, venue_id: str | None = None) -> None:
        """Add a project or venue to someone's scope; assigning twice is harmless."""
        with self.engine.begin() as conn:
            for kind, scope_id in (("project", project_id), ("venue", venue_id)):
                if scope_id is None:
                    continue
                row = {"username": username, "kind": kind, "scope_id": scope_id}
                exists = conn.execute(select(t.staff_scopes).filter_by(**row)).first()
                if exists is None:
                    conn.execute(insert(t.staff_scopes).values(**row))

    def account(self, username: str) -> Account | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.staff_accounts).where(t.staff_accounts.c.username == username)
            ).first()
            if row is None:
                return None
            return Account(
                person=self._person(conn, username, Role(row.role)),
                password_hash=row.password_hash,
                created_at_ms=row.created_at_ms,
                disabled_at_ms=row.disabled_at_ms,
                failed_attempts=row.failed_attempts,
                last_failure_ms=row.last_failure_ms,
            )

    def accounts(self) -> list[Account]:
        with self.engine.connect() as conn:
            names = conn.scalars(
                select(t.staff_accounts.c.username).order_by(t.staff_accounts.c.username)
            ).all()
        return [a for a in (self.account(n) for n in names) if a is not None]

    def disable(self, username: str, now_ms: int) -> None:
        """Disable an account and end its sessions at once. Raises UnknownAccount."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(t.staff_accounts)
                .where(t.staff_accounts.c.username == username, t.staff_accounts.c.disabled_at_ms.is_(None))
                .values(disabled_at_ms=now_ms)
            )
            if (
                done.rowcount == 0
                and conn.execute(
                    select(t.staff_accounts.c.username).where(t.staff_accounts.c.username == username)
                ).first()
                is None
            ):
                raise UnknownAccount(username)
            conn.execute(delete(t.staff_sessions).where(t.staff_sessions.c.username == username))

    def record_failure(self, username: str, now_ms: int) -> None:
        # Counted in the database (failed_attempts + 1), so concurrent guesses all count.
        with self.engine.begin() as conn:
            conn.execute(
                update(t.staff_accounts)
                .where(t.staff_accounts.c.username == username)
                .values(failed_attempts=t.staff_accounts.c.failed_attempts + 1, last_failure_ms=now_ms)
            )

    def record_success(self, username: str, new_hash: str | None = None) -> None:
        values: dict[str, object] = {"failed_attempts": 0, "last_failure_ms": None}
        if new_hash is not None:
            values["password_hash"] = new_hash
        with self.engine.begin() as conn:
            conn.execute(
                update(t.staff_accounts).where(t.staff_accounts.c.username == username).values(**values)
            )

    # --- sessions ------------------------------------------------------------

    def start_session(self, username: str, token: str, now_ms: int, lifetime_ms: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.staff_sessions).values(
                    token_hash=token_hash(token),
                    username=username,
                    created_at_ms=now_ms,
                    expires_at_ms=now_ms + lifetime_ms,
                    last_seen_ms=now_ms,
                )
            )

    def session_person(self, token: str, now_ms: int, idle_ms: int) -> Person | None:
        """The person a live session belongs to, and the session touched; None if expired, idle or gone.

        A dead session is deleted when found, so the table holds only live ones and the few
        nobody came back to (end_expired_sessions)."""
        key = token_hash(token)
        with self.engine.begin() as conn:
            row = conn.execute(
                select(t.staff_sessions, t.staff_accounts.c.role, t.staff_accounts.c.disabled_at_ms)
                .join(t.staff_accounts, t.staff_accounts.c.username == t.staff_sessions.c.username)
                .where(t.staff_sessions.c.token_hash == key)
            ).first()
            if row is None:
                return None
            alive = now_ms < row.expires_at_ms and now_ms - row.last_seen_ms < idle_ms
            if not alive or row.disabled_at_ms is not None:
                conn.execute(delete(t.staff_sessions).where(t.staff_sessions.c.token_hash == key))
                return None
            conn.execute(
                update(t.staff_sessions)
                .where(t.staff_sessions.c.token_hash == key)
                .values(last_seen_ms=now_ms)
            )
            return self._person(conn, row.username, Role(row.role))

    def end_session(self, token: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(t.staff_sessions).where(t.staff_sessions.c.token_hash == token_hash(token)))

    def end_expired_sessions(self, now_ms: int) -> int:
        with self.engine.begin() as conn:
            done = conn.execute(delete(t.staff_sessions).where(t.staff_sessions.c.expires_at_ms <= now_ms))
            return done.rowcount

    # --- machine tokens ----------------------------------------------------------

    def add_machine_token(
        self, name: str, token: str, permissions: frozenset[Permission], now_ms: int
    ) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(t.machine_tokens).values(
                        name=name,
                        token_hash=token_hash(token),
                        permissions=" ".join(sorted(p.value for p in permissions)),
                        created_at_ms=now_ms,
                    )
                )
        except IntegrityError:
            raise TokenNameTaken(name) from None

    def machine_tokens(self) -> list[MachineToken]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.machine_tokens).order_by(t.machine_tokens.c.name)).all()
        return [_machine_token(row) for row in rows]

    def machine_token(self, token: str) -> MachineToken | None:
        """The live (not revoked) token whose SHA-256 this token has, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.machine_tokens).where(
                    t.machine_tokens.c.token_hash == token_hash(token),
                    t.machine_tokens.c.revoked_at_ms.is_(None),
                )
            ).first()
        return None if row is None else _machine_token(row)

    def revoke_machine_token(self, name: str, now_ms: int) -> None:
        """Refuse the token from now on. Raises UnknownToken (revoking twice is harmless)."""
        with self.engine.begin() as conn:
            found = conn.execute(
                select(t.machine_tokens.c.revoked_at_ms).where(t.machine_tokens.c.name == name)
            ).first()
            if found is None:
                raise UnknownToken(name)
            if found.revoked_at_ms is None:
                conn.execute(
                    update(t.machine_tokens)
                    .where(t.machine_tokens.c.name == name)
                    .values(revoked_at_ms=now_ms)
                )

    # --- the access log --------------------------------------------------------

    def log(self, record: AccessRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(t.access_log).values(
                    at_ms=record.at_ms,
                    actor=record.actor,
                    action=record.action,
                    target=record.target[:200],
                    decision=record.decision,
                    client=record.client[:64],
                    detail=record.detail,
                )
            )

    def access_log(self, limit: int = 200) -> list[AccessRecord]:
        """The newest records first."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(t.access_log).order_by(t.access_log.c.id.desc()).limit(limit)).all()
        return [
            AccessRecord(r.at_ms, r.actor, r.action, r.target, r.decision, r.client, r.detail) for r in rows
        ]

    @staticmethod
    def _person(conn: Connection, username: str, role: Role) -> Person:
        scopes = conn.execute(
            select(t.staff_scopes.c.kind, t.staff_scopes.c.scope_id).where(
                t.staff_scopes.c.username == username
            )
        ).all()
        return Person(
            username=username,
            role=role,
            projects=frozenset(s for k, s in scopes if k == "project"),
            venues=frozenset(s for k, s in scopes if k == "venue"),
        )


def _machine_token(row: Row[Any]) -> MachineToken:
    return MachineToken(
        name=row.name,
        permissions=frozenset(Permission(p) for p in row.permissions.split()),
        created_at_ms=row.created_at_ms,
        revoked_at_ms=row.revoked_at_ms,
        token_hash=row.token_hash,
    )
