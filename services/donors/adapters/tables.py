"""The donor store's tables (SQLAlchemy Core), created by migration 0006.

They sit in the ledger's database but belong to the API. The ledger writes none
of them and reads one column, donor_data.data_key, to open a gift's sealed
message for the screens (services/ledger/adapters/donor_keys.py). Unlike the
journal they may change and be erased: personal data (names, messages, the
per-donor data key) lives here and nowhere permanent.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

# One row per donation a donor started: what was promised, and what became of it.
pledges = Table(
    "pledges",
    metadata,
    Column("donation_id", String(36), primary_key=True),
    # Our order number at the provider (WeChat Pay: 6-32 letters and digits).
    Column("out_trade_no", String(32), nullable=False, unique=True),
    Column("project_id", String(64), nullable=False),
    Column("venue_id", String(64)),
    Column("channel", String(16), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("anonymity", String(16), nullable=False),
    Column("donor_ref", String(36), nullable=False),
    # A keyed hash of the client's address: enough to count its requests, not to find it.
    Column("client_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # pending | paid | failed
    Column("created_at_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("provider", String(40), nullable=False),
    Column("provider_charge_id", String(64), unique=True),  # counted once, whatever the donation
    Column("paid_at_ms", BigInteger),
    Column("fee_fen", BigInteger),
    Column("receipt_no", String(40), unique=True),
    Column("verification_code", String(16), nullable=False),
    Column("failure_reason", Text),
    Index("ix_pledges_client", "client_hash", "created_at_ms"),
    Index("ix_pledges_project", "project_id", "created_at_ms"),
    Index("ix_pledges_pending", "status", "expires_at_ms"),
)

# The last receipt number given per organisation and year: numbers are gap-free.
receipt_counters = Table(
    "receipt_counters",
    metadata,
    Column("org_code", String(16), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("last_no", BigInteger, nullable=False),
)

# Idempotency-Key → the donation it created, for 24 hours.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    Column("donation_id", String(36), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False, index=True),
)

# Notification nonces seen within the timestamp tolerance: a replay is refused.
notification_nonces = Table(
    "notification_nonces",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("seen_at_ms", BigInteger, nullable=False, index=True),
)

# Personal data, erasable: the name and message a donor gave, and the data key
# that encrypts them on the input topics. Erasing sets them to NULL.
donor_data = Table(
    "donor_data",
    metadata,
    Column("donor_ref", String(36), primary_key=True),
    Column("data_key", Text),  # base64 of 32 random bytes (AES-256-GCM); NULL once erased
    Column("display_name", Text),
    Column("message", Text),
    Column("erased_at_ms", BigInteger),
)
