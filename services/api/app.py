"""The HTTP edge: an app factory, so tests and the process wire it the same way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.routing import APIRoute

from services.api.errors import install_error_handlers
from services.api.open_projects import OpenProjects
from services.api.producer import EventPublisher
from services.api.routes import docs, donations, pages, projects, transparency
from services.ledger.read import LedgerQueries, Transparency
from services.platform.health import Check, health_router
from services.platform.settings import Settings

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
    install_error_handlers(app)

    app.include_router(pages.router)
    app.include_router(projects.router)
    app.include_router(donations.router)
    app.include_router(transparency.router)
    app.include_router(docs.router)
    _include_operations(app, checks)
    return app
