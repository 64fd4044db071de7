"""The display gateway's CHARITY_DISPLAY_* options."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from services.display.options import DisplayOptions
from services.display.venues import DEFAULT_VENUES_FILE


def test_variables_and_keyword_arguments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CHARITY_VENUES_FILE", raising=False)
    monkeypatch.delenv("CHARITY_DISPLAY_MAX_CLIENTS", raising=False)
    assert DisplayOptions().venues_path == DEFAULT_VENUES_FILE
    monkeypatch.setenv("CHARITY_VENUES_FILE", str(tmp_path / "venues.json"))
    monkeypatch.setenv("CHARITY_DISPLAY_DECISIONS_FILE", str(tmp_path / "decisions.jsonl"))
    monkeypatch.setenv("CHARITY_DISPLAY_COALESCE_MS", "100")
    options = DisplayOptions(max_clients=7)
    assert options.venues_path == tmp_path / "venues.json"
    assert options.decisions_path == tmp_path / "decisions.jsonl"
    assert (options.coalesce_ms, options.max_clients) == (100, 7)


def test_a_bad_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHARITY_DISPLAY_MAX_CLIENTS", "lots")
    with pytest.raises(ValidationError, match="CHARITY_DISPLAY_MAX_CLIENTS"):
        DisplayOptions()
