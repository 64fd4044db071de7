"""Staff endpoints of the gateway: the venue configuration and held donor messages
(decisions on them are shared with the other gateways through `decisions.py`).

Guarded by the shared staff token; closed altogether while none is set.
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, HTTPException

from services.display.decisions import APPROVED, REJECTED, DecisionLog
from services.display.hub import Hub
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


def staff_router(hub: Hub, settings: Settings, options: DisplayOptions, decisions: DecisionLog) -> APIRouter:
    def require_staff(authorization: Annotated[str | None, Header()] = None) -> None:
        if not settings.staff_token:
            raise HTTPException(403, "staff endpoints are closed: CHARITY_STAFF_TOKEN is not set")
        supplied = (authorization or "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), settings.staff_token.encode()):
            raise HTTPException(401, "staff token required", headers={"WWW-Authenticate": "Bearer"})

    router = APIRouter(prefix="/staff", tags=["staff"], dependencies=[Depends(require_staff)])

    @router.get("/moderation")
    async def held_messages() -> list[dict[str, Any]]:
        return [
            {"id": m.entry_id, "text": m.text, "reason": m.reason, "held_at": m.held_at}
            for m in hub.moderator.held()
        ]

    async def decide(entry_id: str, decision: str) -> dict[str, str]:
        if not hub.moderator.is_held(entry_id):
            raise HTTPException(404, "no such held message")
        # Written first: a decision every gateway (and this one after a restart) will find.
        try:
            await asyncio.to_thread(decisions.append, entry_id, decision)
        except OSError as exc:
            raise HTTPException(
                503, f"the decision could not be recorded ({exc}); nothing changed, try again"
            ) from exc
        hub.decide(entry_id, decision)
        return {"status": decision}

    @router.post("/moderation/{entry_id}/approve")
    async def approve(entry_id: str) -> dict[str, str]:
        return await decide(entry_id, APPROVED)

    @router.post("/moderation/{entry_id}/reject")
    async def reject(entry_id: str) -> dict[str, str]:
        return await decide(entry_id, REJECTED)

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
