"""Staff endpoints of the gateway: the venue configuration, held donor messages and names
(decisions on them are shared with the other gateways through `decisions.py`).

Guarded by the shared staff token; closed altogether while none is set. The API's
console calls them for people, having checked the person's scope itself; it names
the person in `X-Charity-Actor`, which the decisions file records. `?venue=` keeps
a list, or a decision, to the gifts that venue's screens show.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query

from services.display.decisions import APPROVED, FLAGGED, REJECTED, DecisionLog, name_key
from services.display.hub import Hub
from services.display.moderation import MASKED_NAME, HeldMessage
from services.display.options import DisplayOptions
from services.display.venues import (
    VenueCatalogue,
    VenueConfigError,
    catalogue_to_json,
    parse_venue,
    save_catalogue,
    venue_to_json,
)
from services.platform.settings import Settings

# `?venue=`: only what that venue's screens show. X-Charity-Actor: the person who decided.
VenueQuery = Annotated[str | None, Query(max_length=64)]
ActorHeader = Annotated[str | None, Header(alias="X-Charity-Actor", max_length=64)]


def staff_router(hub: Hub, settings: Settings, options: DisplayOptions, decisions: DecisionLog) -> APIRouter:
    def require_staff(authorization: Annotated[str | None, Header()] = None) -> None:
        if not settings.staff_token:
            raise HTTPException(403, "staff endpoints are closed: CHARITY_STAFF_TOKEN is not set")
        supplied = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), settings.staff_token.encode()):
            raise HTTPException(401, "staff token required", headers={"WWW-Authenticate": "Bearer"})

    router = APIRouter(prefix="/staff", tags=["staff"], dependencies=[Depends(require_staff)])

    def shown_at(venue_id: str | None, project_id: str, gift_venue: str | None) -> bool:
        if venue_id is None:
            return True
        venue = hub.catalogue.venues.get(venue_id)
        return venue is not None and venue.shows_gift(project_id, gift_venue)

    def held_json(m: HeldMessage) -> dict[str, Any]:
        return {
            "id": m.entry_id,
            "subject": m.subject,
            "text": m.text,
            "reason": m.reason,
            "held_at": m.held_at,
            "project_id": m.project_id,
            "venue_id": m.venue_id,
        }

    @router.get("/moderation")
    async def held_messages(
        venue: VenueQuery = None,
    ) -> list[dict[str, Any]]:
        return [held_json(m) for m in hub.moderator.held() if shown_at(venue, m.project_id, m.venue_id)]

    @router.get("/feed")
    async def recent_names(venue: VenueQuery = None) -> list[dict[str, Any]]:
        """The newest gifts with a donor's name on screens: what an operator may flag."""
        named = [
            {"id": e.entry_id, "name": e.shown_name, "project_id": e.project_id, "venue_id": e.venue_id}
            for e in hub.state.recent_feed()
            if e.shown_name not in ("", MASKED_NAME) and shown_at(venue, e.project_id, e.venue_id)
        ]
        return named[::-1][:50]

    async def record(key: str, decision: str, actor: str | None) -> dict[str, str]:
        # Written first: a decision every gateway (and this one after a restart) will find.
        try:
            await asyncio.to_thread(decisions.append, key, decision, actor)
        except OSError as exc:
            raise HTTPException(
                503, f"the decision could not be recorded ({exc}); nothing changed, try again"
            ) from exc
        hub.decide(key, decision)
        return {"status": decision}

    async def decide(entry_id: str, decision: str, venue: str | None, actor: str | None) -> dict[str, str]:
        held = next(
            (m for m in hub.moderator.held() if m.subject == "message" and m.entry_id == entry_id), None
        )
        if held is None or not shown_at(venue, held.project_id, held.venue_id):
            raise HTTPException(404, "no such held message")
        return await record(entry_id, decision, actor)

    @router.post("/moderation/{entry_id}/approve")
    async def approve(entry_id: str, venue: VenueQuery = None, actor: ActorHeader = None) -> dict[str, str]:
        return await decide(entry_id, APPROVED, venue, actor)

    @router.post("/moderation/{entry_id}/reject")
    async def reject(entry_id: str, venue: VenueQuery = None, actor: ActorHeader = None) -> dict[str, str]:
        return await decide(entry_id, REJECTED, venue, actor)

    @router.post("/names/{entry_id}/{decision}")
    async def decide_name(
        entry_id: str, decision: str, venue: VenueQuery = None, actor: ActorHeader = None
    ) -> dict[str, str]:
        """approve or reject a held name; flag a name on screens (masked until approved)."""
        chosen = {"approve": APPROVED, "reject": REJECTED, "flag": FLAGGED}.get(decision)
        if chosen is None:
            raise HTTPException(404, "a name is approved, rejected or flagged")
        if chosen == FLAGGED:
            entry = hub.state.entry(entry_id)
            if entry is None or entry.shown_name in ("", MASKED_NAME):
                raise HTTPException(404, "no such gift with a name on screens")
            where = (entry.project_id, entry.venue_id)
        else:
            held = hub.moderator.held_name(entry_id)
            if held is None:
                raise HTTPException(404, "no such held name")
            where = (held.project_id, held.venue_id)
        if not shown_at(venue, *where):
            raise HTTPException(404, "not a gift this venue shows")
        return await record(name_key(entry_id), chosen, actor)

    @router.get("/venues")
    async def venues() -> dict[str, Any]:
        return catalogue_to_json(hub.catalogue)

    @router.put("/venues/{venue_id}")
    async def put_venue(venue_id: str, body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        try:
            venue = parse_venue({**body, "id": venue_id})
        except VenueConfigError as exc:
            raise HTTPException(422, str(exc)) from exc
        venues = dict(hub.catalogue.venues)
        venues[venue_id] = venue
        await _save(hub, options, VenueCatalogue(venues, hub.catalogue.moderation))
        return venue_to_json(venue)

    @router.delete("/venues/{venue_id}")
    async def delete_venue(venue_id: str) -> dict[str, str]:
        if venue_id not in hub.catalogue.venues:
            raise HTTPException(404, "unknown venue")
        venues = {k: v for k, v in hub.catalogue.venues.items() if k != venue_id}
        await _save(hub, options, VenueCatalogue(venues, hub.catalogue.moderation))
        return {"status": "deleted"}

    return router


async def _save(hub: Hub, options: DisplayOptions, catalogue: VenueCatalogue) -> None:
    """Write the file (the source of truth, shared with the other gateways) and apply it here."""
    await asyncio.to_thread(save_catalogue, options.venues_path, catalogue)
    hub.reconfigure(catalogue)
