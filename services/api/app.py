"""The HTTP edge: an app factory, so tests and the process wire it the same way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute

from services.api.display_gateway import DisplayGateway
from services.api.donor_statements import LookupGuard
from services.api.errors import install_error_handlers
from services.api.giving import Giving, NoProvider
from services.api.journal_watch import watch_journal
from services.api.open_projects import OpenProjects
from services.api.producer import EventPublisher
from services.api.request_metrics import RequestMetrics
from services.api.routes import (
    disbursements,
    disclosure_pages,
    docs,
    donations,
    giving_api,
    giving_pages,
    giving_statements,
    pages,
    projects,
    staff_audit,
    staff_audit_charts,
    staff_audit_overview,
    staff_disbursements,
    staff_exports,
    staff_money,
    staff_pages,
    staff_projects,
    staff_statements,
    staff_venues,
    transparency,
)
from services.api.routes.giving_pages import return_token
from services.api.staff_auth import StaffAuth, install_staff_pages, now_ms
from services.api.web import install_web, load_or_create_secret
from services.donors.adapters.store import DonorStore
from services.ledger.read import ChartQueries, JournalVerification, LedgerQueries, ProjectAudit, Transparency
from services.payments.provider import PaymentProvider
from services.platform.db import make_engine
from services.platform.health import Check, health_router
from services.platform.settings import Settings
from services.staff.adapters.documents import DocumentStore
from services.staff.adapters.store import StaffStore
from services.staff.domain.documents import DocumentRules

log = logging.getLogger(__name__)

# What the shared operations routes answer beyond what their signatures say.
_OPERATIONS_DOCUMENTED: dict[str, dict[str, Any]] = {
    "/readyz": {
        "responses": {
            503: {
                "description": "a dependency is not usable; `failing` names each with its error",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "status": {"const": "not ready"},
                                "failing": {"type": "object", "additionalProperties": {"type": "string"}},
                            },
                            "required": ["status", "failing"],
                        }
                    }
                },
            }
        }
    },
    # Prometheus' text exposition format, not JSON.
    "/metrics": {"response_class": PlainTextResponse},
}


def _include_operations(app: FastAPI, checks: dict[str, Check]) -> None:
    """/healthz, /readyz and /metrics as every service serves them, documented as they answer."""
    for route in health_router(checks).routes:
        assert isinstance(route, APIRoute)
        app.add_api_route(
            route.path,
            route.endpoint,
            methods=sorted(route.methods or ()),
            tags=list(route.tags),
            **_OPERATIONS_DOCUMENTED.get(route.path, {}),
        )


async def _reconcile_forever(giving: Giving, every_s: float) -> None:
    """Settle the pledges nobody paid, and confirmations never acknowledged."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await giving.reconcile()
        except Exception:  # the database or the provider away: the next round tries again
            log.exception("pledge reconciliation failed; trying again in %.0f s", every_s)


def _document_the_ceiling(app: FastAPI, ceiling_fen: int) -> None:
    """The largest gift is a setting; the OpenAPI document states this deployment's."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = build()
            document["components"]["schemas"]["DonationIn"]["properties"]["amount_fen"]["maximum"] = (
                ceiling_fen
            )
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: Settings,
    queries: LedgerQueries,
    publisher: EventPublisher,
    checks: dict[str, Check],
    provider: PaymentProvider | None = None,
    store: DonorStore | None = None,
    staff_store: StaffStore | None = None,
    clock: Callable[[], int] = now_ms,
    display: DisplayGateway | None = None,
) -> FastAPI:
    """The API. Without a payment provider it serves everything but taking gifts (503).

    store: the donor store, shared with the provider's nonce memory; by default one
    on the ledger's database. staff_store: likewise; clock: the staff sessions' time (ms)."""
    provider = provider or NoProvider()
    web_secret = load_or_create_secret(Path(settings.web_secret_path))
    base = settings.public_base_url.rstrip("/")
    open_projects = OpenProjects(queries)
    store = store or DonorStore(make_engine(settings.database_url), queries.engine)
    giving = Giving(
        settings,
        store,
        provider,
        publisher,
        open_projects,
        return_url=lambda donation_id: (
            f"{base}/donate/return/{donation_id}?t={return_token(web_secret, donation_id)}"
        ),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reconciler = (
            None
            if isinstance(provider, NoProvider)
            else asyncio.create_task(_reconcile_forever(giving, settings.pledge_reconcile_interval_s))
        )
        watcher = asyncio.create_task(watch_journal(app.state.verification))
        yield
        for task in (reconciler, watcher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await giving.payments.written()
        publisher.close()  # waits for any record still in flight

    app = FastAPI(
        title="慈善捐赠账本 · Charity donation ledger",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served by routes/docs.py, without a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.queries = queries
    app.state.open_projects = open_projects
    app.state.publisher = publisher
    app.state.transparency = Transparency(queries.engine)
    # One per process: it checks only the entries added since its last call.
    app.state.verification = JournalVerification(queries.engine)
    # One per process: it remembers the closed-loop figures at the last few journal seqs.
    app.state.project_audit = ProjectAudit(queries.engine)
    # One per process: it remembers each project's latest chart figures (routes/staff_audit_charts.py).
    app.state.charts = ChartQueries(queries.engine)
    app.state.web_secret = web_secret
    app.state.donor_store = store
    app.state.giving = giving
    app.state.lookup_guard = LookupGuard()  # wrong receipt codes per client, for /statements
    # The display gateway whose venues the console's venue pages configure and moderate.
    app.state.display = display or DisplayGateway.from_settings(settings)
    app.state.staff_auth = StaffAuth(staff_store or StaffStore(store.engine), settings, clock=clock)
    app.state.documents = DocumentStore(
        app.state.staff_auth.store.engine,
        Path(settings.documents_dir),
        DocumentRules(settings.document_max_bytes),
    )
    install_error_handlers(app)
    install_staff_pages(app)
    install_web(app, settings.payment_public_url or settings.payment_base_url)
    app.add_middleware(RequestMetrics)  # outermost: it times and counts what the others answer too

    app.include_router(pages.router)
    app.include_router(giving_pages.router)
    app.include_router(giving_statements.router)
    app.include_router(disclosure_pages.router)
    app.include_router(giving_api.router)
    app.include_router(projects.router)
    app.include_router(staff_pages.router)
    app.include_router(staff_projects.router)
    app.include_router(staff_statements.router)
    app.include_router(staff_venues.router)
    app.include_router(staff_money.router)
    app.include_router(staff_disbursements.router)
    app.include_router(staff_audit.router)
    app.include_router(staff_audit_charts.router)
    app.include_router(staff_audit_overview.router)
    app.include_router(staff_exports.router)
    app.include_router(disbursements.router)
    if settings.internal_donations_enabled:
        # The staff-token stand-in for provider notifications: tests and demo data only.
        app.include_router(donations.router)
    app.include_router(transparency.router)
    app.include_router(docs.router)
    _include_operations(app, checks)
    _document_the_ceiling(app, settings.donation_ceiling_fen)
    return app
