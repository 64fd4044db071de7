"""Tuning of the display gateway, from CHARITY_DISPLAY_* environment variables.

Kept apart from the shared Settings because only this process reads them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings

from services.display.venues import DEFAULT_VENUES_FILE
from services.platform.settings import VAR_DIR, settings_config


class DisplayOptions(BaseSettings):
    model_config = settings_config("CHARITY_DISPLAY_")

    venues_path: Path = Field(default=DEFAULT_VENUES_FILE, validation_alias="CHARITY_VENUES_FILE")
    # Screens sit on the venue network, so production sets 0.0.0.0 explicitly.
    host: str = "127.0.0.1"
    max_clients: int = 12000
    # Frames a screen may have waiting; at 5 updates/s plus heartbeats that is ~6 s of backlog.
    client_queue: int = 32
    # At most 5 updates a second per venue: the p99 ≤ 250 ms target needs it (docs/display.md).
    coalesce_ms: int = 200
    heartbeat_s: float = 15.0
    # Messages kept per venue for Last-Event-ID resumes: 256 at 5/s is about 50 s.
    history: int = 256
    feed_backlog: int = 2000
    retry_after_s: int = 5
    # The broker counts as unreachable (screens say "paused") after this long without an answer.
    stale_after_s: float = 20.0
    reload_poll_s: float = 5.0
    # Staff decisions on held messages, shared by the gateways of this host (decisions.py).
    decisions_path: Path = Field(
        default=VAR_DIR / "display" / "moderation-decisions.jsonl",
        validation_alias="CHARITY_DISPLAY_DECISIONS_FILE",
    )
