"""Venue configuration: the demo file, validation with clear messages, saving."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.display.moderation import ModerationMode
from services.display.venues import (
    DEFAULT_VENUES_FILE,
    FeedScope,
    Theme,
    VenueConfigError,
    load_catalogue,
    parse_catalogue,
    save_catalogue,
)


def venue(**overrides: Any) -> dict[str, Any]:
    return {
        "id": "garden",
        "title": {"zh": "花园", "en": "Garden"},
        "projects": ["elderly-meals"],
        **overrides,
    }


def test_the_demo_file_loads() -> None:
    catalogue = load_catalogue(DEFAULT_VENUES_FILE)
    assert {"botanic-garden", "community-centre", "event-hall"} <= set(catalogue.venues)
    garden = catalogue.venues["botanic-garden"]
    assert garden.title_zh == "慈善植造社" and garden.subtitle_zh == "白塘植物园"
    assert garden.theme is Theme.GARDEN
    demo = {"elderly-meals", "child-protection", "community-embedded", "veterans-care", "charity-plants"}
    assert all(set(v.projects) <= demo for v in catalogue.venues.values())


def test_defaults_and_the_donate_url() -> None:
    parsed = parse_catalogue({"venues": [venue()]}).venues["garden"]
    assert parsed.theme is Theme.COMMUNITY
    assert parsed.feed_scope is FeedScope.PROJECTS and not parsed.show_messages
    # One project: straight to its form; several: the donor chooses.
    one = "https://give.example.org/donate?project=elderly-meals&venue=garden"
    assert parsed.donate_url("https://give.example.org/") == one
    two = parse_catalogue({"venues": [venue(projects=["elderly-meals", "veterans-care"])]}).venues["garden"]
    assert two.donate_url("https://give.example.org") == "https://give.example.org/donate?venue=garden"
    custom = parse_catalogue({"venues": [venue(qr_url="{public_base_url}/p/meals")]}).venues["garden"]
    assert custom.donate_url("https://give.example.org") == "https://give.example.org/p/meals"


def test_the_feed_scope_decides_which_gifts_a_venue_shows() -> None:
    everywhere = parse_catalogue({"venues": [venue()]}).venues["garden"]
    here_only = parse_catalogue({"venues": [venue(feed={"scope": "venue"})]}).venues["garden"]
    assert everywhere.shows_gift("elderly-meals", None)
    assert not everywhere.shows_gift("veterans-care", "garden")
    assert here_only.shows_gift("elderly-meals", "garden")
    assert not here_only.shows_gift("elderly-meals", "hall")


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"venues": [venue(id="Bad Id")]}, "lower-case"),
        ({"venues": [venue(projects=["meals\n"])]}, "valid and distinct"),
        ({"venues": [venue(projects=[])]}, "non-empty list"),
        ({"venues": [venue(projects=["a", "a"])]}, "distinct"),
        ({"venues": [venue(theme="neon")]}, "theme must be one of garden, community, hall"),
        ({"venues": [venue(title={"en": "No Chinese"})]}, "Chinese"),
        ({"venues": [venue(), venue()]}, "appears twice"),
        ({"venues": [venue(projects=[f"p{i}" for i in range(9)])]}, "at most 8"),
        ({"venues": [venue()], "moderation": {"mode": "maybe"}}, "moderation.mode"),
        ({"venues": {}}, "'venues' must be a list"),
    ],
)
def test_a_bad_file_is_refused_with_a_clear_reason(data: dict[str, Any], complaint: str) -> None:
    with pytest.raises(VenueConfigError, match=complaint):
        parse_catalogue(data)


def test_a_file_that_is_not_json_names_itself(tmp_path: Path) -> None:
    path = tmp_path / "venues.json"
    path.write_text("{oops", encoding="utf-8")
    with pytest.raises(VenueConfigError, match=r"venues\.json: not JSON"):
        load_catalogue(path)


def test_saving_and_loading_round_trips(tmp_path: Path) -> None:
    data = {
        "moderation": {"mode": "wordlist", "blocked_words": ["坏词"], "max_chars": 30},
        "venues": [
            venue(subtitle={"zh": "副标题", "en": "Sub"}, qr_url="https://x/y", feed={"scope": "venue"})
        ],
    }
    catalogue = parse_catalogue(data)
    path = tmp_path / "venues.json"
    save_catalogue(path, catalogue)
    assert load_catalogue(path) == catalogue
    assert catalogue.moderation.mode is ModerationMode.WORDLIST
    assert "副标题" in path.read_text(encoding="utf-8")  # kept readable for staff, not \\u-escaped
    assert json.loads(path.read_text(encoding="utf-8"))["venues"][0]["qr_url"] == "https://x/y"
