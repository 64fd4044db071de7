"""The API's own request metrics on /metrics: requests, latency and requests in flight.

Labelled by the route's template (`/api/projects/{project_id}`), never the raw path:
one series per route, however many projects, receipts or scanners' guesses there are.
"""

from __future__ import annotations

import time

from prometheus_client import Counter, Gauge, Histogram
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Counter(
    "api_http_requests_total",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "api_http_request_duration_seconds",
    "From a request's arrival to the end of its answer, by route template and method",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_FLIGHT = Gauge("api_http_requests_in_flight", "HTTP requests being answered now")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"  # no route: a 404 for a path nobody serves


def route_template(scope: Scope, root_path: str) -> str:
    """The template of the route that answered, as the router left it in the scope: its
    route, or for a mounted app (/static) the mount's path, added to `root_path`."""
    route = scope.get("route")
    if isinstance(route, Mount):
        return f"{route.path}/{{path}}"
    path = getattr(route, "path", None)
    if isinstance(path, str):
        return path
    mounted_at = str(scope.get("root_path", ""))
    if mounted_at != root_path and mounted_at.startswith(root_path):
        return f"{mounted_at[len(root_path) :]}/{{path}}"
    return UNMATCHED


class RequestMetrics:
    """A plain ASGI middleware, like `web.SecurityHeaders`: no extra task per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = str(scope.get("root_path", ""))
        status = 500  # an exception before any answer is the server's error

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            IN_FLIGHT.dec()
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = route_template(scope, root_path)
            REQUESTS.labels(route, method, str(status)).inc()
            LATENCY.labels(route, method).observe(time.perf_counter() - started)
