"""The display gateway's HTTP edge: screen pages, event streams, QR codes, staff endpoints.

Every route that touches the hub is ``async def``: it then runs on the event loop
thread, the only thread that may read or change the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from services.contracts.topics import Topics
from services.display.channel import ChannelLimits
from services.display.decisions import DecisionLog
from services.display.follower import Follower
from services.display.hub import AtCapacity, Hub, NotReady, UnknownVenue
from services.display.options import DisplayOptions
from services.display.qr import qr_svg
from services.display.sse import EventStreamResponse
from services.display.staff import staff_router
from services.display.venues import VenueCatalogue, VenueConfigError, load_catalogue
from services.platform.health import broker_check, health_router
from services.platform.settings import Settings

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
templates = Jinja2Templates(directory=str(HERE / "templates"))


def asset_version() -> str:
    """Changes whenever a static file does, so kiosks never run new HTML with old JS."""
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.rglob("*")):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def make_hub(catalogue: VenueCatalogue, options: DisplayOptions) -> Hub:
    return Hub(
        catalogue,
        max_clients=options.max_clients,
        client_queue=options.client_queue,
        limits=ChannelLimits(interval_s=options.coalesce_ms / 1000, history=options.history),
    )


def create_app(
    settings: Settings,
    catalogue: VenueCatalogue,
    options: DisplayOptions | None = None,
    *,
    hub: Hub | None = None,
    follow: bool = True,
) -> FastAPI:
    """The gateway app. ``follow=False`` leaves the hub to the caller (unit tests feed it)."""
    options = options or DisplayOptions()
    the_hub = hub or make_hub(catalogue, options)
    decisions = DecisionLog(options.decisions_path)
    version = asset_version()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        app.state.loop = loop
        follower = Follower(
            settings.kafka_bootstrap,
            Topics(settings.topic_prefix),
            deliver=lambda events: loop.call_soon_threadsafe(the_hub.ingest, events),
            caught_up=lambda: loop.call_soon_threadsafe(the_hub.mark_caught_up),
            broker_status=lambda ok: loop.call_soon_threadsafe(the_hub.set_broker_reachable, ok),
            feed_backlog=options.feed_backlog,
            stale_after_s=options.stale_after_s,
        )
        # Decisions already taken, before the feed is read again: nothing approved is held.
        await _apply_decisions(the_hub, decisions)
        if follow:
            follower.start()
        tasks = [
            asyncio.create_task(the_hub.run_heartbeats(options.heartbeat_s)),
            asyncio.create_task(_watch_venue_file(the_hub, options)),
            asyncio.create_task(_follow_decisions(the_hub, decisions, options.reload_poll_s)),
        ]
        try:
            yield
        finally:
            the_hub.end_all("shutdown")
            for task in tasks:
                task.cancel()
            if follow:
                await asyncio.to_thread(follower.stop)

    app = DisplayApp(title="charity ledger display", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.stream_handler = partial(_serve_stream, the_hub, options)
    app.state.hub = the_hub
    app.state.options = options

    def ready_check() -> None:
        if not the_hub.ready:
            raise RuntimeError("still reading the totals topic")

    checks = {"caught_up": ready_check, "kafka": broker_check(settings.kafka_bootstrap)}
    app.include_router(health_router(checks))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"version": version, **context}, status_code=status)

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request) -> HTMLResponse:
        return page(request, "index.html", venues=list(the_hub.catalogue.venues.values()))

    @app.get("/screen/{venue_id}", response_class=HTMLResponse)
    async def screen(request: Request, venue_id: str) -> HTMLResponse:
        venue = the_hub.catalogue.venues.get(venue_id)
        if venue is None:
            return page(
                request,
                "unknown_venue.html",
                status=404,
                venue_id=venue_id,
                venues=list(the_hub.catalogue.venues.values()),
            )
        donate_url = venue.donate_url(settings.public_base_url)
        return page(request, "screen.html", venue=venue, donate_url=donate_url)

    @app.get("/screen/{venue_id}/qr.svg")
    async def qr(venue_id: str) -> Response:
        venue = the_hub.catalogue.venues.get(venue_id)
        if venue is None:
            raise HTTPException(404, "unknown venue")
        svg = qr_svg(venue.donate_url(settings.public_base_url))
        return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "max-age=300"})

    @app.get("/screen/{venue_id}/status")
    async def status(venue_id: str) -> dict[str, Any]:
        channel = the_hub.channels.get(venue_id)
        if venue_id not in the_hub.catalogue.venues:
            raise HTTPException(404, "unknown venue")
        return {
            "ready": the_hub.ready,
            "epoch": the_hub.epoch,
            "seq": channel.seq if channel else None,
            "screens": len(channel.clients) if channel else 0,
            "venue_total_fen": channel.venue_total_fen() if channel else None,
        }

    app.include_router(staff_router(the_hub, settings, options, decisions))
    return app


class DisplayApp(FastAPI):
    """FastAPI, with the event streams taken before the middleware stack.

    A stream writes a message per update to each of thousands of screens; every
    middleware layer wraps ``send`` in another coroutine, and together they cost more
    than the write itself. The streams need none of them: they have no body to parse,
    no dependencies, and their errors are plain JSON answered here.
    """

    stream_handler: Callable[[Scope, Receive, Send, str], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.stream_handler is not None and scope["method"] == "GET":
            match = _STREAM_PATH.match(scope["path"])
            if match:
                await self.stream_handler(scope, receive, send, match.group(1))
                return
        await super().__call__(scope, receive, send)


_STREAM_PATH = re.compile(r"^/screen/([^/]+)/events$")


async def _serve_stream(
    hub: Hub, options: DisplayOptions, scope: Scope, receive: Receive, send: Send, venue_id: str
) -> None:
    """GET /screen/{venue_id}/events: a snapshot or a resume, then updates and heartbeats."""
    # The header is what a browser sends on its own reconnects; the query parameter is
    # what the page uses when it opens a new EventSource after a failed connection.
    headers = dict(scope["headers"])
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    resume_from = headers.get(b"last-event-id", b"").decode("latin-1") or query.get("last_event_id", [""])[0]
    response: Response
    try:
        client, first = hub.open_stream(venue_id, resume_from or None)
    except UnknownVenue:
        response = JSONResponse({"error": "unknown venue", "venue": venue_id}, status_code=404)
    except NotReady:
        response = _unavailable("catching up with the ledger", 2)
    except AtCapacity:
        response = _unavailable("this gateway serves as many screens as it may", options.retry_after_s)
    else:
        response = EventStreamResponse(client, first, hub.close_stream)
    await response(scope, receive, send)


def _unavailable(reason: str, retry_after_s: int) -> JSONResponse:
    return JSONResponse(
        {"error": "unavailable", "reason": reason},
        status_code=503,
        headers={"Retry-After": str(retry_after_s)},
    )


async def _follow_decisions(hub: Hub, decisions: DecisionLog, every_s: float) -> None:
    """Apply what staff decide on other gateways (and this one: applying twice is harmless)."""
    while True:
        await asyncio.sleep(every_s)
        await _apply_decisions(hub, decisions)


async def _apply_decisions(hub: Hub, decisions: DecisionLog) -> None:
    try:
        decided = await asyncio.to_thread(decisions.read_new)
    except OSError as exc:  # unreadable for now (permissions, a full disk): the next poll retries
        log.error("moderation decisions not read from %s: %s", decisions.path, exc)
        return
    for entry_id, decision in decided:
        hub.decide(entry_id, decision)


async def _watch_venue_file(hub: Hub, options: DisplayOptions) -> None:
    """Reload the venue file when it changes; a broken edit keeps the last good configuration."""
    path = options.venues_path

    def mtime() -> float | None:
        try:
            return path.stat().st_mtime
        except OSError:
            return None

    seen = mtime()
    while True:
        await asyncio.sleep(options.reload_poll_s)
        current = mtime()
        if current is None or current == seen:
            continue
        seen = current
        try:
            catalogue = await asyncio.to_thread(load_catalogue, path)
        except VenueConfigError as exc:
            log.error("venue file not reloaded, keeping the previous configuration: %s", exc)
            continue
        if catalogue != hub.catalogue:
            log.info("venue file changed: %d venues", len(catalogue.venues))
            hub.reconfigure(catalogue)
