"""Who is asking, and may they: staff sessions, machine clients, and the `require` check.

A person is known only from their session cookie, never from anything the
request body says; the actor of every event they cause is their username. The
shared `CHARITY_STAFF_TOKEN` is a machine client's credential ("automation",
recorded as `machine:automation`), never a person's; so is each named token made
with `charity-ledger staff token add NAME` (`machine:NAME`, exactly its permissions).

Refusals are logged in the access log: a person without the permission, or
without the project in their scope (403), and a request with no valid session
or token. Staff pages answer those with a 403 page or a redirect to the log-in
page; the JSON API with 403 or 401.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.web import render
from services.platform.settings import Settings
from services.staff.adapters.store import AccessRecord, StaffStore, token_hash
from services.staff.domain.lockout import LockoutPolicy
from services.staff.domain.machines import SHARED_TOKEN_NAME
from services.staff.domain.roles import Permission, Person, allows
from services.staff.hashing import hash_password, needs_rehash, verify_password

SESSION_COOKIE = "staff_session"
LOGIN_PATH = "/staff/login"

# What the shared CHARITY_STAFF_TOKEN may do; named tokens carry their own (the staff store).
# People never use these.
MACHINE_GRANTS: Mapping[str, frozenset[Permission]] = {
    SHARED_TOKEN_NAME: frozenset(
        {Permission.REGISTER_PROJECT, Permission.APPROVE_PROJECT, Permission.RUN_FUNDRAISING}
    ),
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Actor:
    """Who acts: a person (their username) or a machine client (`machine:<name>`)."""

    name: str
    person: Person | None = None


@dataclass(frozen=True)
class LoginResult:
    person: Person | None
    token: str | None
    # Why it was refused, for the access log (the page shows one sentence whatever it is).
    reason: str = ""


class PageRefused(Exception):
    """A staff page refused: a 403 page, or the log-in page for nobody logged in."""

    def __init__(self, detail: str, *, anonymous: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.anonymous = anonymous


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class StaffAuth:
    """Log-in, sessions and the access log over the staff store; its clock can be set by tests."""

    def __init__(
        self,
        store: StaffStore,
        settings: Settings,
        clock: Callable[[], int] = now_ms,
        lockout: LockoutPolicy | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.clock = clock
        self.lockout = lockout or LockoutPolicy()

    @property
    def secure_cookie(self) -> bool:
        return self.settings.public_base_url.startswith("https://")

    def log(self, request: Request, actor: str | None, action: str, decision: str, detail: str = "") -> None:
        self.store.log(
            AccessRecord(
                at_ms=self.clock(),
                actor=actor,
                action=action,
                target=f"{request.method} {request.url.path}",
                decision=decision,
                client=client_of(request),
                detail=detail,
            )
        )

    def login(self, request: Request, username: str, password: str) -> LoginResult:
        """Check a password, honouring lock-out; every decision goes to the access log."""
        now = self.clock()
        account = self.store.account(username)
        if account is not None and self.lockout.is_locked(
            account.failed_attempts, account.last_failure_ms, now
        ):
            # Locked: the password is not even checked, so guessing during the wait learns nothing.
            self.log(request, username, "login", "refused", "locked out")
            return LoginResult(None, None, "locked out")
        # Verified even without an account, so the time taken does not tell whether it exists.
        good = verify_password(account.password_hash if account else None, password)
        if account is None or not good or account.disabled:
            reason = (
                "unknown username" if account is None else "disabled" if account.disabled else "bad password"
            )
            if account is not None and not good:
                self.store.record_failure(username, now)
            self.log(request, username if account else None, "login", "refused", reason)
            return LoginResult(None, None, reason)
        self.store.record_success(
            username, hash_password(password) if needs_rehash(account.password_hash) else None
        )
        previous = request.cookies.get(SESSION_COOKIE)
        if previous:
            # A new token at every log-in, and the old one ended: a planted cookie is worth nothing.
            self.store.end_session(previous)
        # Sessions nobody came back to are swept here: log-ins are rare enough to carry it.
        self.store.end_expired_sessions(now)
        token = secrets.token_urlsafe(32)
        self.store.start_session(username, token, now, self.settings.staff_session_lifetime_s * 1000)
        self.log(request, username, "login", "allowed")
        return LoginResult(account.person, token)

    def logout(self, request: Request) -> None:
        token = request.cookies.get(SESSION_COOKIE)
        person = self.person(request)
        if token:
            self.store.end_session(token)
        self.log(request, person.username if person else None, "logout", "allowed")

    def person(self, request: Request) -> Person | None:
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return None
        return self.store.session_person(token, self.clock(), self.settings.staff_session_idle_s * 1000)

    def machine(
        self, credentials: HTTPAuthorizationCredentials | None
    ) -> tuple[str, frozenset[Permission]] | None:
        """The machine client a bearer token names and what it may do, or None: the shared
        `CHARITY_STAFF_TOKEN` (automation), or a named token from `staff token add` (blocking)."""
        if credentials is None:
            return None
        # Compared as bytes: compare_digest refuses non-ASCII str, which would be a 500.
        supplied = credentials.credentials.encode()
        shared = self.settings.staff_token
        if shared and secrets.compare_digest(supplied, shared.encode()):
            return SHARED_TOKEN_NAME, MACHINE_GRANTS[SHARED_TOKEN_NAME]
        # Found by its SHA-256 (a high-entropy token needs no slow hash); the stored hash is
        # compared again in constant time, so no timing tells how much of it matched.
        found = self.store.machine_token(credentials.credentials)
        if found is not None and secrets.compare_digest(
            found.token_hash, token_hash(credentials.credentials)
        ):
            return found.name, found.permissions
        return None


_bearer = HTTPBearer(auto_error=False)


async def get_staff_auth(request: Request) -> StaffAuth:
    auth: StaffAuth = request.app.state.staff_auth
    return auth


StaffAuthDep = Annotated[StaffAuth, Depends(get_staff_auth)]


def _is_page(request: Request) -> bool:
    return request.url.path == "/staff" or request.url.path.startswith("/staff/")


def require(permission: Permission, *, project_id: str | None = None) -> Callable[..., Awaitable[Actor]]:
    """A dependency of the staff API: the actor, a person of the session or a machine client's
    bearer token, if they may do `permission` (on the project named by the path parameter
    `project_id`, for scoped roles); otherwise refused and logged."""

    async def check(
        request: Request,
        auth: StaffAuthDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Actor:
        return await _actor(request, auth, permission, project_id, credentials)

    return check


def require_page(
    permission: Permission, *, project_id: str | None = None, venue_id: str | None = None
) -> Callable[..., Awaitable[Actor]]:
    """`require` for the console's pages: people only, from the session. Pages take no bearer
    token, so their OpenAPI entries declare none. `venue_id` names the path parameter of a
    venue, checked against a venue operator's venues as `project_id` is against a manager's."""

    async def check(request: Request, auth: StaffAuthDep) -> Actor:
        return await _actor(request, auth, permission, project_id, None, venue_id)

    return check


async def _actor(
    request: Request,
    auth: StaffAuth,
    permission: Permission,
    project_id: str | None,
    credentials: HTTPAuthorizationCredentials | None,
    venue_id: str | None = None,
) -> Actor:
    target = request.path_params.get(project_id) if project_id else None
    venue = request.path_params.get(venue_id) if venue_id else None
    person = await asyncio.to_thread(auth.person, request)
    if person is not None:
        if allows(person, permission, project_id=target, venue_id=venue):
            return Actor(person.username, person)
        return await _refuse(request, auth, person.username, f"{permission} not granted to {person.role}")
    machine = None if _is_page(request) else await asyncio.to_thread(auth.machine, credentials)
    if machine is not None:
        name, granted = machine
        if permission in granted:
            return Actor(f"machine:{name}")
        return await _refuse(request, auth, f"machine:{name}", f"{permission} not granted")
    await asyncio.to_thread(auth.log, request, None, "access", "refused", "not logged in")
    if _is_page(request):
        raise PageRefused("not logged in", anonymous=True)
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "log in at /staff/login, or send a machine client's token (Authorization: Bearer …)",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def _refuse(request: Request, auth: StaffAuth, actor: str, detail: str) -> Actor:
    await asyncio.to_thread(auth.log, request, actor, "access", "refused", detail)
    if _is_page(request):
        raise PageRefused(detail, anonymous=False)
    raise HTTPException(status.HTTP_403_FORBIDDEN, f"not allowed: {detail}")


def install_staff_pages(app: FastAPI) -> None:
    """Refused staff pages: the log-in page for nobody, a 403 page for someone without the right."""

    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageRefused)
        if exc.anonymous:
            return RedirectResponse(LOGIN_PATH, status.HTTP_303_SEE_OTHER)
        return render(request, "staff_forbidden.html", status.HTTP_403_FORBIDDEN, detail=exc.detail)

    app.add_exception_handler(PageRefused, refused)
