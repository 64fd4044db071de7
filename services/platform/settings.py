"""One Settings object for every service, read from CHARITY_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

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
    # Copies of every partition, and how many must hold a write before it is acknowledged:
    # 1 and 1 for the local broker; 3 and 2 on a cluster (docs/operations.md).
    topic_replication_factor: int = 1
    topic_min_insync_replicas: int = 1
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
    # The ledger's health and metrics address: loopback, unless a probe or a scraper must
    # reach it from outside the host (a Kubernetes pod sets 0.0.0.0; deploy/kubernetes).
    ledger_http_host: str = "127.0.0.1"
    display_port: int = 8002
    # Where the API's venue pages reach a display gateway's staff endpoints, with the
    # CHARITY_STAFF_TOKEN both read (docs/staff.md#venue-screens); None: this host's display_port.
    display_url: str | None = None
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
    # --- donors: the donate pages, the payment provider, receipts (docs/donors.md) ---
    # The stand-in `POST /api/internal/donations/confirmed` (staff token): tests and
    # demo data only, never a public deployment.
    internal_donations_enabled: bool = False
    # "wechatpay": WeChat Pay API v3 (the sandbox in make run); "none": the API takes no
    # gifts from donors (503), for deployments that only show figures, and benchmarks.
    payment_provider: Literal["wechatpay", "none"] = "wechatpay"
    # The WeChat Pay API v3 endpoint the API talks to; make run starts the sandbox there.
    payment_base_url: str = "http://127.0.0.1:8003"
    sandbox_port: int = 8003
    # The address the sandbox listens on: 0.0.0.0 to let phones on the network open its pay page.
    sandbox_host: str = "127.0.0.1"
    # Where a donor's phone opens the provider's pay page; None: payment_base_url.
    payment_public_url: str | None = None
    wechatpay_mch_id: str = "1900000109"
    wechatpay_appid: str = "wxd678efh567hg6787"
    # The merchant's APIv3 key (32 ASCII bytes) decrypts notifications. A file, never in git.
    wechatpay_api_v3_key_path: str = str(VAR_DIR / "keys" / "wechatpay-apiv3.key")
    # The merchant's RSA private key signs requests to the provider.
    wechatpay_merchant_key_path: str = str(VAR_DIR / "keys" / "wechatpay-merchant.pem")
    # The provider's platform public keys, one PEM per serial number: `<serial>.pem`.
    # Two at once while the provider rotates its key.
    wechatpay_platform_keys_dir: str = str(VAR_DIR / "keys" / "wechatpay-platform")
    # Where the provider POSTs payment notifications; None: this API on loopback.
    payment_notify_url: str | None = None
    # A pledge not paid within this becomes DonationFailed once the provider says it is unpaid.
    pledge_timeout_s: float = 900.0
    # How often the API looks for lapsed pledges and unacknowledged confirmations.
    pledge_reconcile_interval_s: float = 5.0
    # The largest single gift the donate form and API take.
    donation_ceiling_fen: int = 5_000_000
    # More than this many new donations a minute from one client: 429.
    donations_per_client_per_minute: int = 4
    # More than this many new donations a minute for one project, all clients together: 429.
    donations_per_project_per_minute: int = 6000
    # Receipt numbers per organisation: a JSON object of organisation name to short code
    # (`{"苏州工业园区慈善总会": "SIP"}`); others get ORG plus a hash of the name.
    receipt_org_codes: dict[str, str] = {}
    # Signs the CSRF tokens and the language cookie; make run creates one in var/. Never in git.
    web_secret_path: str = str(VAR_DIR / "keys" / "web-secret.key")
    # --- staff (docs/staff.md) ---
    # A staff session ends this long after log-in, or after this long without a request.
    staff_session_lifetime_s: int = 8 * 3600
    staff_session_idle_s: int = 30 * 60
    # --- disbursements (docs/staff.md#disbursements) ---
    # A disbursement of this many fen or more needs two different approvers; the ledger
    # decides with it and the console's pages count approvals against it.
    disbursement_dual_approval_fen: int = Field(default=1_000_000, ge=1)
    # Where uploaded supporting documents and evidence are kept, each under its SHA-256.
    documents_dir: str = str(VAR_DIR / "documents")
    # The largest document the console and the API take, in bytes.
    document_max_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
