"""/healthz, /readyz and /metrics, the same on every service."""

from __future__ import annotations

import socket
from collections.abc import Callable

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import Engine, text

Check = Callable[[], None]  # raises when the dependency is not usable


def health_router(checks: dict[str, Check]) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz")
    def readyz(response: Response) -> dict[str, object]:
        failures: dict[str, str] = {}
        for name, check in checks.items():
            try:
                check()
            except Exception as exc:
                failures[name] = f"{exc.__class__.__name__}: {exc}"
        if failures:
            response.status_code = 503
            return {"status": "not ready", "failing": failures}
        return {"status": "ready", "checked": sorted(checks)}

    @router.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def broker_check(bootstrap: str) -> Check:
    def check() -> None:
        host, _, port = bootstrap.split(",")[0].rpartition(":")
        with socket.create_connection((host, int(port)), timeout=1.0):
            pass

    return check


def database_check(engine: Engine) -> Check:
    def check() -> None:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))

    return check
