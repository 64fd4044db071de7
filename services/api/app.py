"""The HTTP edge: an app factory, so tests and the process wire it the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.api.open_projects import OpenProjects
from services.api.producer import EventPublisher
from services.api.routes import docs, donations, pages, projects, transparency
from services.ledger.read import LedgerQueries, Transparency
from services.platform.health import Check, health_router
from services.platform.settings import Settings


def _readable(error: dict[str, Any]) -> dict[str, str]:
    field = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
    return {"field": field or "body", "problem": str(error.get("msg", "invalid"))}


def create_app(
    settings: Settings, queries: LedgerQueries, publisher: EventPublisher, checks: dict[str, Check]
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
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
    app.state.open_projects = OpenProjects(queries)
    app.state.publisher = publisher
    app.state.transparency = Transparency(queries.engine)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_readable(e) for e in exc.errors()]
        summary = "; ".join(f"{p['field']}: {p['problem']}" for p in problems)
        return JSONResponse(status_code=422, content={"detail": summary, "problems": problems})

    app.include_router(pages.router)
    app.include_router(projects.router)
    app.include_router(donations.router)
    app.include_router(transparency.router)
    app.include_router(docs.router)
    app.include_router(health_router(checks))
    return app
