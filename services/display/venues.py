"""Venue screen configuration: which projects a venue shows, its titles, theme and QR target.

One JSON file (``CHARITY_VENUES_FILE``, default deploy/venues.json) is the source of
truth. Staff edit it by hand or through the gateway's staff endpoint, which writes
the file; every gateway on the host notices the change and reloads it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from services.display.moderation import ModerationMode, ModerationPolicy
from services.platform.settings import REPO_ROOT

# The checkout's venues. An installed wheel ships no venue configuration (the
# venues are the deployment's, not the code's): it needs CHARITY_VENUES_FILE.
DEFAULT_VENUES_FILE = REPO_ROOT / "deploy" / "venues.json"
_VENUE_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}\Z")
_PROJECT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}\Z")
_E = TypeVar("_E", bound=StrEnum)
MAX_PROJECTS = 8  # more cards than this are unreadable from across a room at 1080p


class VenueConfigError(ValueError):
    """The venue file is not valid; the message says where."""


class Theme(StrEnum):
    GARDEN = "garden"
    COMMUNITY = "community"
    HALL = "hall"


class FeedScope(StrEnum):
    PROJECTS = "projects"  # every gift to the venue's projects, wherever it was given
    VENUE = "venue"  # only gifts given at this venue (its QR code, cash box, sales)


@dataclass(frozen=True)
class Venue:
    venue_id: str
    title_zh: str
    title_en: str
    projects: tuple[str, ...]
    subtitle_zh: str = ""
    subtitle_en: str = ""
    theme: Theme = Theme.COMMUNITY
    # None means the default donate page; "{public_base_url}" is expanded.
    qr_url: str | None = None
    feed_scope: FeedScope = FeedScope.PROJECTS
    show_messages: bool = False

    def donate_url(self, public_base_url: str) -> str:
        if self.qr_url is None:
            # A venue of one project sends donors straight to its form; others let them choose.
            chosen = f"project={self.projects[0]}&" if len(self.projects) == 1 else ""
            return f"{public_base_url.rstrip('/')}/donate?{chosen}venue={self.venue_id}"
        return self.qr_url.replace("{public_base_url}", public_base_url.rstrip("/"))

    def shows_gift(self, project_id: str, venue_id: str | None) -> bool:
        if project_id not in self.projects:
            return False
        return self.feed_scope is FeedScope.PROJECTS or venue_id == self.venue_id


@dataclass(frozen=True)
class VenueCatalogue:
    venues: Mapping[str, Venue] = field(default_factory=dict)
    moderation: ModerationPolicy = field(default_factory=ModerationPolicy)


def load_catalogue(path: Path) -> VenueCatalogue:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise VenueConfigError(f"{path}: no such file (CHARITY_VENUES_FILE names the venue file)") from exc
    except json.JSONDecodeError as exc:
        raise VenueConfigError(f"{path}: not JSON: {exc}") from exc
    try:
        return parse_catalogue(data)
    except VenueConfigError as exc:
        raise VenueConfigError(f"{path}: {exc}") from exc


def parse_catalogue(data: Any) -> VenueCatalogue:
    if not isinstance(data, dict):
        raise VenueConfigError("the top level must be an object")
    raw_venues = data.get("venues")
    if not isinstance(raw_venues, list):
        raise VenueConfigError("'venues' must be a list")
    venues: dict[str, Venue] = {}
    for index, raw in enumerate(raw_venues):
        venue = parse_venue(raw, where=f"venues[{index}]")
        if venue.venue_id in venues:
            raise VenueConfigError(f"venues[{index}]: venue id {venue.venue_id!r} appears twice")
        venues[venue.venue_id] = venue
    return VenueCatalogue(venues, parse_moderation(data.get("moderation", {})))


def parse_venue(raw: Any, where: str = "venue") -> Venue:
    if not isinstance(raw, dict):
        raise VenueConfigError(f"{where}: must be an object")
    venue_id = _text(raw, "id", where)
    if not _VENUE_ID.match(venue_id):
        raise VenueConfigError(f"{where}: id {venue_id!r} must be lower-case letters, digits and '-'")
    where = f"{where} ({venue_id})"
    title = _bilingual(raw, "title", where, required=True)
    subtitle = _bilingual(raw, "subtitle", where, required=False)
    projects = raw.get("projects")
    if not isinstance(projects, list) or not projects or not all(isinstance(p, str) for p in projects):
        raise VenueConfigError(f"{where}: 'projects' must be a non-empty list of project ids")
    if len(projects) > MAX_PROJECTS:
        raise VenueConfigError(f"{where}: at most {MAX_PROJECTS} projects fit on a screen")
    bad = [p for p in projects if not _PROJECT_ID.match(p)]
    if bad or len(set(projects)) != len(projects):
        raise VenueConfigError(f"{where}: project ids must be valid and distinct: {projects}")
    feed = raw.get("feed", {})
    if not isinstance(feed, dict):
        raise VenueConfigError(f"{where}: 'feed' must be an object")
    qr_url = raw.get("qr_url")
    if qr_url is not None and (not isinstance(qr_url, str) or not qr_url.strip()):
        raise VenueConfigError(f"{where}: 'qr_url' must be a URL")
    show_messages = feed.get("show_messages", False)
    if not isinstance(show_messages, bool):
        raise VenueConfigError(f"{where}: 'feed.show_messages' must be true or false")
    return Venue(
        venue_id=venue_id,
        title_zh=title[0],
        title_en=title[1],
        subtitle_zh=subtitle[0],
        subtitle_en=subtitle[1],
        projects=tuple(projects),
        theme=_choice(Theme, raw.get("theme", Theme.COMMUNITY.value), f"{where}: theme"),
        qr_url=qr_url,
        feed_scope=_choice(FeedScope, feed.get("scope", FeedScope.PROJECTS.value), f"{where}: feed.scope"),
        show_messages=show_messages,
    )


def parse_moderation(raw: Any) -> ModerationPolicy:
    if not isinstance(raw, dict):
        raise VenueConfigError("'moderation' must be an object")
    words = raw.get("blocked_words", [])
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise VenueConfigError("'moderation.blocked_words' must be a list of strings")
    max_chars = raw.get("max_chars", ModerationPolicy.max_chars)
    if not isinstance(max_chars, int) or isinstance(max_chars, bool) or not 4 <= max_chars <= 200:
        raise VenueConfigError("'moderation.max_chars' must be an integer from 4 to 200")
    mode = _choice(ModerationMode, raw.get("mode", ModerationMode.OFF.value), "moderation.mode")
    return ModerationPolicy(mode=mode, blocked_words=tuple(words), max_chars=max_chars)


def venue_to_json(venue: Venue) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": venue.venue_id,
        "title": {"zh": venue.title_zh, "en": venue.title_en},
        "projects": list(venue.projects),
        "theme": venue.theme.value,
        "feed": {"scope": venue.feed_scope.value, "show_messages": venue.show_messages},
    }
    if venue.subtitle_zh or venue.subtitle_en:
        data["subtitle"] = {"zh": venue.subtitle_zh, "en": venue.subtitle_en}
    if venue.qr_url is not None:
        data["qr_url"] = venue.qr_url
    return data


def catalogue_to_json(catalogue: VenueCatalogue) -> dict[str, Any]:
    policy = catalogue.moderation
    return {
        "moderation": {
            "mode": policy.mode.value,
            "blocked_words": list(policy.blocked_words),
            "max_chars": policy.max_chars,
        },
        "venues": [venue_to_json(v) for v in catalogue.venues.values()],
    }


def save_catalogue(path: Path, catalogue: VenueCatalogue) -> None:
    """Write atomically, so a gateway reloading at the same moment never reads half a file."""
    text = json.dumps(catalogue_to_json(catalogue), ensure_ascii=False, indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _text(raw: dict[str, Any], key: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise VenueConfigError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def _bilingual(raw: dict[str, Any], key: str, where: str, required: bool) -> tuple[str, str]:
    value = raw.get(key)
    if value is None and not required:
        return "", ""
    if not isinstance(value, dict) or not isinstance(value.get("zh"), str) or not value["zh"].strip():
        raise VenueConfigError(f'{where}: \'{key}\' must be {{"zh": ..., "en": ...}} with a Chinese text')
    english = value.get("en", "")
    if not isinstance(english, str):
        raise VenueConfigError(f"{where}: '{key}.en' must be a string")
    return value["zh"].strip(), english.strip()


def _choice(kind: type[_E], value: Any, where: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise VenueConfigError(f"{where} must be one of {allowed}, not {value!r}") from None
