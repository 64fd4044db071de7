"""The API's client of a display gateway's staff endpoints (services/display/staff.py).

The venue screens' configuration and their held messages and names live in the
gateways, which have no database; the console's venue pages reach them over HTTP
with the machine client's token (CHARITY_STAFF_TOKEN), naming the person who
decides in `X-Charity-Actor`. Whether the person may act on the venue is the
API's check, made before anything is asked of the gateway.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.exceptions import HTTPException

from services.platform.settings import Settings


class GatewayAway(HTTPException):
    """The gateway could not be reached, or answered with an error of its own: a 503, which
    the API's error handlers answer like any other (nothing was changed)."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, detail, headers={"Retry-After": "5"})


class GatewayRefused(Exception):
    """The gateway refused the request (4xx); `detail` is its reason."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class DisplayGateway:
    def __init__(
        self, base_url: str, token: str, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._transport = transport

    @classmethod
    def from_settings(cls, settings: Settings) -> DisplayGateway:
        return cls(settings.display_url or f"http://127.0.0.1:{settings.display_port}", settings.staff_token)

    async def venues(self) -> dict[str, Any]:
        """The venue catalogue as the gateway's file holds it: {"moderation": …, "venues": […]}."""
        found: dict[str, Any] = await self._ask("GET", "/staff/venues")
        return found

    async def venue(self, venue_id: str) -> dict[str, Any] | None:
        catalogue = await self.venues()
        return next((v for v in catalogue["venues"] if v["id"] == venue_id), None)

    async def put_venue(self, venue_id: str, config: dict[str, Any], actor: str) -> dict[str, Any]:
        saved: dict[str, Any] = await self._ask("PUT", f"/staff/venues/{venue_id}", actor, json=config)
        return saved

    async def held(self, venue_id: str) -> list[dict[str, Any]]:
        """Messages and names held for staff that this venue's screens would show."""
        held: list[dict[str, Any]] = await self._ask("GET", "/staff/moderation", params={"venue": venue_id})
        return held

    async def recent_names(self, venue_id: str) -> list[dict[str, Any]]:
        """The newest gifts with a donor's name on this venue's screens (an operator may flag one)."""
        names: list[dict[str, Any]] = await self._ask("GET", "/staff/feed", params={"venue": venue_id})
        return names

    async def decide(self, venue_id: str, subject: str, entry_id: str, decision: str, actor: str) -> None:
        """approve / reject a held message; approve / reject / flag a name."""
        path = (
            f"/staff/moderation/{entry_id}/{decision}"
            if subject == "message"
            else f"/staff/names/{entry_id}/{decision}"
        )
        await self._ask("POST", path, actor, params={"venue": venue_id})

    async def _ask(self, method: str, path: str, actor: str | None = None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self._token}"}
        if actor:
            headers["X-Charity-Actor"] = actor
        try:
            async with httpx.AsyncClient(
                base_url=self.base_url, transport=self._transport, timeout=5.0
            ) as client:
                answer = await client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise GatewayAway(f"the display gateway at {self.base_url} cannot be reached ({exc})") from exc
        if answer.status_code >= 500 or answer.status_code in (401, 403):
            # 401/403: the two processes do not share CHARITY_STAFF_TOKEN, an operator's mistake.
            raise GatewayAway(f"the display gateway answered {answer.status_code}: {_detail(answer)}")
        if answer.status_code >= 400:
            raise GatewayRefused(answer.status_code, _detail(answer))
        return answer.json()


def _detail(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail")
    except ValueError:
        return answer.text[:200]
    return detail if isinstance(detail, str) else str(detail)[:400]
