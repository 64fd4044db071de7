"""Tuning of the display gateway, from CHARITY_DISPLAY_* environment variables.

Kept apart from the shared Settings because only this process reads them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from services.display.venues import venues_file
from services.platform.settings import VAR_DIR


def _env(name: str, default: str) -> str:
    return os.environ.get(f"CHARITY_DISPLAY_{name}", default)


@dataclass(frozen=True)
class DisplayOptions:
    venues_path: Path = field(default_factory=venues_file)
    # Screens sit on the venue network, so production sets 0.0.0.0 explicitly.
    host: str = field(default_factory=lambda: _env("HOST", "127.0.0.1"))
    max_clients: int = field(default_factory=lambda: int(_env("MAX_CLIENTS", "12000")))
    # Frames a screen may have waiting; at 4 updates/s plus heartbeats that is ~8 s of backlog.
    client_queue: int = field(default_factory=lambda: int(_env("CLIENT_QUEUE", "32")))
    coalesce_ms: int = field(default_factory=lambda: int(_env("COALESCE_MS", "250")))
    heartbeat_s: float = field(default_factory=lambda: float(_env("HEARTBEAT_S", "15")))
    # Messages kept per venue for Last-Event-ID resumes: 256 at 4/s is about a minute.
    history: int = field(default_factory=lambda: int(_env("HISTORY", "256")))
    feed_backlog: int = field(default_factory=lambda: int(_env("FEED_BACKLOG", "2000")))
    retry_after_s: int = field(default_factory=lambda: int(_env("RETRY_AFTER_S", "5")))
    # The broker counts as unreachable (screens say "paused") after this long without an answer.
    stale_after_s: float = field(default_factory=lambda: float(_env("STALE_AFTER_S", "20")))
    reload_poll_s: float = field(default_factory=lambda: float(_env("RELOAD_POLL_S", "5")))
    # Staff decisions on held messages, shared by the gateways of this host (decisions.py).
    decisions_path: Path = field(
        default_factory=lambda: Path(
            _env("DECISIONS_FILE", str(VAR_DIR / "display" / "moderation-decisions.jsonl"))
        )
    )
