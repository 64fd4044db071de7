"""One Settings object for every service, read from CHARITY_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasGenerator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
# Read at import: the defaults below and other modules' paths are built on it.
VAR_DIR = Path(os.environ.get("CHARITY_VAR_DIR", REPO_ROOT / "var"))
ENV_PREFIX = "CHARITY_"


def settings_config(env_prefix: str) -> SettingsConfigDict:
    """Frozen settings from `env_prefix` variables; keyword arguments win over the environment.

    Each field's variable is also its validation alias, so a bad value from the
    environment is reported as CHARITY_API_PORT rather than api_port.
    """
    return SettingsConfigDict(
        env_prefix=env_prefix,
        alias_generator=AliasGenerator(validation_alias=lambda name: f"{env_prefix}{name}".upper()),
        validate_by_name=True,
        frozen=True,
    )


def describe_error(error: ValidationError) -> str:
    """A few lines for an operator: `CHARITY_API_PORT='abc': Input should be a valid integer…`."""
    lines = [f"invalid settings ({error.error_count()}):"]
    for problem in error.errors(include_url=False):
        where = ".".join(str(part) for part in problem["loc"]) or error.title
        value = f"={problem['input']!r}" if problem["type"] != "missing" else ""
        lines.append(f"  {where}{value}: {problem['msg']}")
    return "\n".join(lines)


class Settings(BaseSettings):
    model_config = settings_config(ENV_PREFIX)

    database_url: str = f"sqlite:///{VAR_DIR / 'ledger.db'}"
    kafka_bootstrap: str = "127.0.0.1:9092"
    # The port of the local broker that `charity-ledger run` and `charity-ledger kafka` start.
    kafka_port: int = 9092
    # The local broker's KRaft controller port; None: kafka_port + 1.
    kafka_controller_port: int | None = None
    topic_prefix: str = ""
    ledger_group: str = "charity-ledger"
    # Static group membership: a ledger restarted under the same id takes its
    # partitions back at once instead of waiting out the session timeout.
    # Every ledger instance of a group needs its own id.
    ledger_instance_id: str = "ledger-1"
    # Guards the staff and the stand-in payment endpoints; empty means they are closed.
    staff_token: str = Field(default="", repr=False)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ledger_http_port: int = 8001
    display_port: int = 8002
    public_base_url: str = "http://127.0.0.1:8000"
    batch_max_records: int = 2000
    batch_max_wait_ms: int = 50
    # How often the ledger re-reads topic metadata, i.e. how soon it notices added partitions.
    metadata_max_age_ms: int = 30000
    # The Ed25519 key that signs tree heads. Never in git; see docs/ledger.md.
    signing_key_path: str = Field(
        default=str(VAR_DIR / "keys" / "tree-head-ed25519.pem"), validation_alias="CHARITY_SIGNING_KEY"
    )
    # Whether a ledger that finds no key file may create one. An embedded SQLite
    # ledger (make run) always may; for a production database a new key would
    # publish heads that no longer verify with the key people hold, so it must
    # be created on purpose (`charity-ledger keys rotate`) or allowed here.
    create_signing_key: bool = False
    tree_head_interval_s: float = 2.0
    produce_timeout_s: float = 5.0
