"""Typed dependencies of the HTTP edge: everything routes need comes through here."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.giving import Giving
from services.api.open_projects import OpenProjects
from services.api.producer import EventPublisher
from services.donors.adapters.store import DonorStore
from services.ledger.read import JournalVerification, LedgerQueries, ProjectAudit
from services.platform.settings import Settings

# The dependencies are `async def` although they never await: FastAPI runs a plain
# `def` dependency in the thread pool, a thread hop per dependency per request.


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_queries(request: Request) -> LedgerQueries:
    queries: LedgerQueries = request.app.state.queries
    return queries


async def get_verification(request: Request) -> JournalVerification:
    verification: JournalVerification = request.app.state.verification
    return verification


async def get_project_audit(request: Request) -> ProjectAudit:
    audit: ProjectAudit = request.app.state.project_audit
    return audit


async def get_open_projects(request: Request) -> OpenProjects:
    open_projects: OpenProjects = request.app.state.open_projects
    return open_projects


async def get_publisher(request: Request) -> EventPublisher:
    publisher: EventPublisher = request.app.state.publisher
    return publisher


_bearer = HTTPBearer(auto_error=False)


async def require_staff(
    settings: Annotated[Settings, Depends(get_settings)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    """The payment stand-in needs `Authorization: Bearer <CHARITY_STAFF_TOKEN>`: the machine client
    "automation" (people log in instead: services/api/staff_auth.py)."""
    if not settings.staff_token:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "staff endpoints are disabled: no CHARITY_STAFF_TOKEN set"
        )
    # Compared as bytes: compare_digest refuses non-ASCII str, which would be a 500.
    if credentials is None or not secrets.compare_digest(
        credentials.credentials.encode(), settings.staff_token.encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid staff token is required (Authorization: Bearer …)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return "machine:automation"


SettingsDep = Annotated[Settings, Depends(get_settings)]
QueriesDep = Annotated[LedgerQueries, Depends(get_queries)]
VerificationDep = Annotated[JournalVerification, Depends(get_verification)]
ProjectAuditDep = Annotated[ProjectAudit, Depends(get_project_audit)]
OpenProjectsDep = Annotated[OpenProjects, Depends(get_open_projects)]
PublisherDep = Annotated[EventPublisher, Depends(get_publisher)]
StaffDep = Annotated[str, Depends(require_staff)]


async def get_giving(request: Request) -> Giving:
    giving: Giving = request.app.state.giving
    return giving


async def get_donor_store(request: Request) -> DonorStore:
    store: DonorStore = request.app.state.donor_store
    return store


async def get_web_secret(request: Request) -> bytes:
    secret: bytes = request.app.state.web_secret
    return secret


GivingDep = Annotated[Giving, Depends(get_giving)]
DonorStoreDep = Annotated[DonorStore, Depends(get_donor_store)]
WebSecretDep = Annotated[bytes, Depends(get_web_secret)]
