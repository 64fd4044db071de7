"""One Settings object for every service, read from CHARITY_* environment variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VAR_DIR = Path(os.environ.get("CHARITY_VAR_DIR", REPO_ROOT / "var"))


def _env(name: str, default: str) -> str:
    return os.environ.get(f"CHARITY_{name}", default)


@dataclass(frozen=True)
class Settings:
    database_url: str = field(
        default_factory=lambda: _env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'ledger.db'}")
    )
    kafka_bootstrap: str = field(default_factory=lambda: _env("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    topic_prefix: str = field(default_factory=lambda: _env("TOPIC_PREFIX", ""))
    ledger_group: str = field(default_factory=lambda: _env("LEDGER_GROUP", "charity-ledger"))
    # Static group membership: a ledger restarted under the same id takes its
    # partitions back at once instead of waiting out the session timeout.
    # Every ledger instance of a group needs its own id.
    ledger_instance_id: str = field(default_factory=lambda: _env("LEDGER_INSTANCE_ID", "ledger-1"))
    # Guards the staff and the stand-in payment endpoints; empty means they are closed.
    staff_token: str = field(default_factory=lambda: _env("STAFF_TOKEN", ""))
    api_host: str = field(default_factory=lambda: _env("API_HOST", "127.0.0.1"))
    api_port: int = field(default_factory=lambda: int(_env("API_PORT", "8000")))
    ledger_http_port: int = field(default_factory=lambda: int(_env("LEDGER_HTTP_PORT", "8001")))
    display_port: int = field(default_factory=lambda: int(_env("DISPLAY_PORT", "8002")))
    public_base_url: str = field(default_factory=lambda: _env("PUBLIC_BASE_URL", "http://127.0.0.1:8000"))
    batch_max_records: int = field(default_factory=lambda: int(_env("BATCH_MAX_RECORDS", "2000")))
    batch_max_wait_ms: int = field(default_factory=lambda: int(_env("BATCH_MAX_WAIT_MS", "50")))
    # How often the ledger re-reads topic metadata, i.e. how soon it notices added partitions.
    metadata_max_age_ms: int = field(default_factory=lambda: int(_env("METADATA_MAX_AGE_MS", "30000")))
    # The Ed25519 key that signs tree heads. Never in git; see docs/ledger.md.
    signing_key_path: str = field(
        default_factory=lambda: _env("SIGNING_KEY", str(VAR_DIR / "keys" / "tree-head-ed25519.pem"))
    )
    tree_head_interval_s: float = field(default_factory=lambda: float(_env("TREE_HEAD_INTERVAL_S", "2")))
    produce_timeout_s: float = field(default_factory=lambda: float(_env("PRODUCE_TIMEOUT_S", "5")))
