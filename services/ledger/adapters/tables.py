"""The ledger database's tables (SQLAlchemy Core). Alembic migrations create them.

journal and postings are append-only: triggers refuse UPDATE and DELETE. The
other tables are projections or bookkeeping that rebuild can recreate.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

metadata = MetaData()

journal = Table(
    "journal",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("entry_id", String(36), nullable=False, unique=True),
    Column("kind", String(40), nullable=False),
    Column("project_id", String(64), nullable=False, index=True),
    Column("effective_at", DateTime(timezone=True), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False),
    Column("decision", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    # The exact bytes that were hashed (canonical JSON of the whole entry, see
    # domain/chain.py): verify and rebuild read entries from here, so what is
    # checked is what is replayed. The other columns are for queries.
    Column("canonical", Text, nullable=False),
    Column("source", String(300), nullable=False),  # topic/partition/offset it came from
    Column("prev_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
)

postings = Table(
    "postings",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("leg", SmallInteger, primary_key=True, autoincrement=False),
    Column("account", String(120), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("amount", BigInteger, nullable=False),
)

chain_head = Table(
    "chain_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("entry_hash", String(64), nullable=False),
)

consumer_offsets = Table(
    "consumer_offsets",
    metadata,
    Column("group_id", String(200), primary_key=True),
    Column("topic", String(249), primary_key=True),
    Column("partition", Integer, primary_key=True, autoincrement=False),
    Column("next_offset", BigInteger, nullable=False),
)

project_totals = Table(
    "project_totals",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("status", String(24), nullable=False),
    Column("plan", Text, nullable=False),
    Column("goal_fen", BigInteger, nullable=False),
    Column("gross_fen", BigInteger, nullable=False),
    Column("fees_fen", BigInteger, nullable=False),
    Column("net_fen", BigInteger, nullable=False),
    Column("offline_cash_fen", BigInteger, nullable=False),
    Column("offline_sales_fen", BigInteger, nullable=False),
    Column("by_channel", Text, nullable=False),
    Column("donations_count", BigInteger, nullable=False),
    Column("refunded_fen", BigInteger, nullable=False),
    Column("held_fen", BigInteger, nullable=False),
    Column("disbursed_fen", BigInteger, nullable=False),
    Column("suspense_fen", BigInteger, nullable=False),
    Column("redirected_in_fen", BigInteger, nullable=False, server_default="0"),
    Column("leftover_fen", BigInteger, nullable=False),
    Column("fund_fen", BigInteger, nullable=False),
    Column("registered_at", DateTime(timezone=True)),
    Column("opened_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True)),
    Column("last_disclosure_at", DateTime(timezone=True)),
    Column("last_entry_seq", BigInteger, nullable=False),
    Column("resumes_to", String(24)),
)

donations = Table(
    "donations",
    metadata,
    Column("donation_id", String(64), primary_key=True),
    Column("project_id", String(64), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("gross_fen", BigInteger, nullable=False),
    Column("fee_fen", BigInteger, nullable=False),
    Column("refunded_fen", BigInteger, nullable=False),
    Column("to_suspense", Boolean, nullable=False),
    Column("donor_ref", String(64)),
)

suspense_resolutions = Table(
    "suspense_resolutions",
    metadata,
    Column("resolution_id", String(64), primary_key=True),
    Column("project_id", String(64), nullable=False, index=True),
    Column("action", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("target_project_id", String(64)),
    Column("donation_id", String(64)),
    Column("status", String(16), nullable=False),
    Column("approved_by", String(200)),
)

disbursements = Table(
    "disbursements",
    metadata,
    Column("disbursement_id", String(64), primary_key=True),
    Column("project_id", String(64), nullable=False, index=True),
    Column("currency", String(3), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),
    Column("requested_by", String(200), nullable=False),
    Column("payee", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("approvers", Text, nullable=False),  # JSON list
    Column("evidence", Text, nullable=False),  # JSON list of SHA-256
)

merkle_leaves = Table(
    "merkle_leaves",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf_hash", String(64), nullable=False),  # SHA-256(0x00 || canonical entry), hex
)

tree_heads = Table(
    "tree_heads",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", String(64), nullable=False),
    Column("timestamp_ms", BigInteger, nullable=False),
    Column("signature", String(200), nullable=False),  # Ed25519, base64
    Column("key_id", String(64)),  # the signing key; None: before 0004, the oldest key
)

# Every public key that has signed tree heads; rotation adds one.
signing_keys = Table(
    "signing_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),  # hex SHA-256 of the raw public key
    Column("algorithm", String(16), nullable=False),
    Column("public_key", Text, nullable=False),  # SubjectPublicKeyInfo PEM
    Column("valid_from", DateTime(timezone=True), nullable=False),
)

# How far the broker acknowledged each output stream ('journal': a journal seq,
# 'tree-heads': a tree size); the relay publishes what lies beyond.
output_watermarks = Table(
    "output_watermarks",
    metadata,
    Column("stream", String(40), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

# A gift's feed item (masked name, message) until the broker acknowledged it;
# personal data never enters the journal, so it waits here, and is deleted then.
feed_outbox = Table(
    "feed_outbox",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("fields", Text, nullable=False),  # JSON: the DonationFeedItem's fields but id, actor, seq
)

# The right to write: one row, renewed by its holder, checked by every batch.
writer_lease = Table(
    "writer_lease",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("holder", String(200), nullable=False),
    Column("epoch", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),  # by the database's clock
)

APPEND_ONLY_TABLES = ("journal", "postings", "merkle_leaves", "tree_heads", "signing_keys")
