"""The console's venue screens: the venues, each one's configuration, and moderation of what
its screens would show (held donor messages and names).

The configuration and the held items live in the display gateway; these pages
ask it over HTTP (services/api/display_gateway.py) after checking the person
may act on the venue (venue operators: their venues only; a refusal is a 403
in the access log). The gateway judges a configuration: a bad one is shown
again with the gateway's reason and nothing is changed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.api.deps import WebSecretDep
from services.api.display_gateway import DisplayGateway, GatewayRefused
from services.api.errors import page_errors
from services.api.staff_auth import Actor, require_page
from services.api.web import check_csrf, render
from services.staff.domain.roles import Permission, allows

router = APIRouter(prefix="/staff/venues", tags=["pages", "staff"], include_in_schema=False)

VenueId = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="a venue's id")]
EntryId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="a feed entry's id")]

Manager = Annotated[Actor, Depends(require_page(Permission.MANAGE_VENUES))]
VenueManager = Annotated[Actor, Depends(require_page(Permission.MANAGE_VENUES, venue_id="venue_id"))]
Moderator = Annotated[Actor, Depends(require_page(Permission.MODERATE_DISPLAY, venue_id="venue_id"))]

# The choices the gateway accepts (services/display/venues.py), with their labels.
THEMES = {"garden": ("花园", "Garden"), "community": ("社区", "Community"), "hall": ("大厅", "Hall")}
FEED_SCOPES = {
    "projects": ("项目的全部捐赠", "All gifts to its projects"),
    "venue": ("仅本场地的捐赠", "Only gifts given here"),
}
# What a form may decide, per subject: messages are approved or rejected, names also flagged.
DECISIONS = {"message": ("approve", "reject"), "name": ("approve", "reject", "flag")}
GATEWAY_ERRORS = {503: "the display gateway cannot be reached; nothing changed"}
VENUE_PAGE_ERRORS = page_errors(
    {403: "not one of the person's venues (logged)", 404: "no such venue", **GATEWAY_ERRORS}
)
CONFIG_FIELDS = (
    "title_zh",
    "title_en",
    "subtitle_zh",
    "subtitle_en",
    "projects",
    "theme",
    "feed_scope",
    "show_messages",
    "qr_url",
)


def _gateway(request: Request) -> DisplayGateway:
    gateway: DisplayGateway = request.app.state.display
    return gateway


Gateway = Annotated[DisplayGateway, Depends(_gateway)]


async def _known_venue(gateway: DisplayGateway, venue_id: str) -> dict[str, Any]:
    """The venue's configuration; 404 for a venue the gateway does not have (the console
    changes venues but does not make them: the venue file does)."""
    venue = await gateway.venue(venue_id)
    if venue is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown venue {venue_id!r}")
    return venue


@router.get(
    "", response_class=HTMLResponse, responses=page_errors({403: "may not manage venues", **GATEWAY_ERRORS})
)
async def venue_list(request: Request, actor: Manager, gateway: Gateway) -> HTMLResponse:
    person = actor.person
    assert person is not None  # pages take no machine client
    catalogue = await gateway.venues()
    venues = [v for v in catalogue["venues"] if allows(person, Permission.MANAGE_VENUES, venue_id=v["id"])]
    return render(request, "staff_venues.html", person=person, venues=venues)


def _form_of(venue: dict[str, Any]) -> dict[str, str]:
    """A venue's configuration as the form shows it."""
    feed = venue.get("feed", {})
    subtitle = venue.get("subtitle", {})
    return {
        "title_zh": venue["title"]["zh"],
        "title_en": venue["title"].get("en", ""),
        "subtitle_zh": subtitle.get("zh", ""),
        "subtitle_en": subtitle.get("en", ""),
        "projects": "\n".join(venue["projects"]),
        "theme": venue.get("theme", "community"),
        "feed_scope": feed.get("scope", "projects"),
        "show_messages": "on" if feed.get("show_messages") else "",
        "qr_url": venue.get("qr_url") or "",
    }


def _config_of(form: dict[str, str]) -> dict[str, Any]:
    """The form as the gateway's PUT /staff/venues/{id} takes it; the gateway judges it."""
    config: dict[str, Any] = {
        "title": {"zh": form.get("title_zh", "").strip(), "en": form.get("title_en", "").strip()},
        "projects": form.get("projects", "").replace(",", " ").split(),
        "theme": form.get("theme", ""),
        "feed": {"scope": form.get("feed_scope", ""), "show_messages": form.get("show_messages") == "on"},
    }
    subtitle = {"zh": form.get("subtitle_zh", "").strip(), "en": form.get("subtitle_en", "").strip()}
    if subtitle["zh"] or subtitle["en"]:
        config["subtitle"] = subtitle
    if form.get("qr_url", "").strip():
        config["qr_url"] = form["qr_url"].strip()
    return config


def _config_page(
    request: Request, actor: Actor, venue_id: str, form: dict[str, str], status_code: int = 200, **extra: Any
) -> HTMLResponse:
    return render(
        request,
        "staff_venue.html",
        status_code,
        person=actor.person,
        venue_id=venue_id,
        form=form,
        themes=THEMES,
        feed_scopes=FEED_SCOPES,
        saved=request.query_params.get("saved") == "1",
        **extra,
    )


@router.get(
    "/{venue_id}",
    response_class=HTMLResponse,
    responses=VENUE_PAGE_ERRORS,
)
async def venue_page(
    request: Request, venue_id: VenueId, actor: VenueManager, gateway: Gateway
) -> HTMLResponse:
    venue = await _known_venue(gateway, venue_id)
    return _config_page(request, actor, venue_id, _form_of(venue))


@router.post(
    "/{venue_id}",
    responses=page_errors(
        {
            303: "saved by the gateway: back to the venue's page",
            403: "not one of the person's venues (logged), or the form's CSRF token does not match",
            404: "no such venue",
            422: "the gateway refused the configuration; the form is shown again with its reason",
            **GATEWAY_ERRORS,
        }
    ),
)
async def save_venue(
    request: Request, venue_id: VenueId, actor: VenueManager, secret: WebSecretDep, gateway: Gateway
) -> Response:
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str) and len(v) <= 2000}
    check_csrf(request, secret, fields.get("csrf", ""))
    shown = {k: fields.get(k, "") for k in CONFIG_FIELDS}
    try:
        await _known_venue(gateway, venue_id)
        await gateway.put_venue(venue_id, _config_of(fields), actor.name)
    except GatewayRefused as refused:
        return _config_page(
            request, actor, venue_id, shown, status.HTTP_422_UNPROCESSABLE_CONTENT, refusal=refused.detail
        )
    return RedirectResponse(f"/staff/venues/{venue_id}?saved=1", status.HTTP_303_SEE_OTHER)


@router.get(
    "/{venue_id}/moderation",
    response_class=HTMLResponse,
    responses=VENUE_PAGE_ERRORS,
)
async def moderation_page(
    request: Request, venue_id: VenueId, actor: Moderator, gateway: Gateway
) -> HTMLResponse:
    await _known_venue(gateway, venue_id)
    held = await gateway.held(venue_id)
    recent = await gateway.recent_names(venue_id)
    return render(
        request,
        "staff_moderation.html",
        person=actor.person,
        venue_id=venue_id,
        messages=[m for m in held if m.get("subject", "message") == "message"],
        names=[m for m in held if m.get("subject") == "name"],
        recent=recent,
        done=request.query_params.get("done", ""),
    )


@router.post(
    "/{venue_id}/moderation/{entry_id}",
    responses=page_errors(
        {
            303: "decided: back to the venue's moderation page",
            403: "not one of the person's venues (logged), or the form's CSRF token does not match",
            404: "nothing of that id held (or shown) for this venue",
            422: "subject is message or name; decision approve, reject or (a name) flag",
            **GATEWAY_ERRORS,
        }
    ),
)
async def decide(
    request: Request,
    venue_id: VenueId,
    entry_id: EntryId,
    actor: Moderator,
    secret: WebSecretDep,
    gateway: Gateway,
    csrf: Annotated[str, Form(max_length=128)] = "",
    subject: Annotated[str, Form(max_length=16)] = "",
    decision: Annotated[str, Form(max_length=16)] = "",
) -> Response:
    check_csrf(request, secret, csrf)
    if decision not in DECISIONS.get(subject, ()):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "subject is message or name; decision is approve or reject, or flag for a name",
        )
    try:
        await gateway.decide(venue_id, subject, entry_id, decision, actor.name)
    except GatewayRefused as refused:
        raise HTTPException(refused.status, refused.detail) from None
    return RedirectResponse(f"/staff/venues/{venue_id}/moderation?done={decision}", status.HTTP_303_SEE_OTHER)
