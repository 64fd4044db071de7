"""The staff store's tables (SQLAlchemy Core), created by migration 0007.

In the ledger's database, beside the donor store; the ledger reads none of them.
access_log is append-only, like the journal: the database refuses UPDATE and DELETE.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

staff_accounts = Table(
    "staff_accounts",
    metadata,
    Column("username", String(32), primary_key=True),
    Column("role", String(32), nullable=False),
    Column("password_hash", Text, nullable=False),  # argon2id, in its PHC string form
    Column("created_at_ms", BigInteger, nullable=False),
    Column("disabled_at_ms", BigInteger),
    # Failed log-ins since the last success, and when the last one was: the lock-out's input.
    Column("failed_attempts", Integer, nullable=False),
    Column("last_failure_ms", BigInteger),
)

# The projects a project manager runs, the venues a venue operator serves.
staff_scopes = Table(
    "staff_scopes",
    metadata,
    Column("username", String(32), ForeignKey("staff_accounts.username"), primary_key=True),
    Column("kind", String(16), primary_key=True),  # project | venue
    Column("scope_id", String(64), primary_key=True),
)

# Server-side sessions. Only the SHA-256 of the token is stored: a copy of the
# database lets nobody log in as anyone.
staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("username", String(32), ForeignKey("staff_accounts.username"), nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("expires_at_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Index("ix_staff_sessions_username", "username"),
)

# Every authentication decision, refused access and read of personal data: who
# (a username, a machine client, or NULL for nobody), what, when and from where.
access_log = Table(
    "access_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("at_ms", BigInteger, nullable=False),
    Column("actor", String(64)),
    Column("action", String(40), nullable=False),
    Column("target", String(200), nullable=False),
    Column("decision", String(16), nullable=False),  # allowed | refused
    Column("client", String(64), nullable=False),
    Column("detail", Text, nullable=False),
    Index("ix_access_log_at_ms", "at_ms"),
)

# Machine clients' named tokens (migration 0009): only the SHA-256 of each token, its
# permissions (space-separated Permission values) and when it was made or revoked.
machine_tokens = Table(
    "machine_tokens",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("permissions", Text, nullable=False),
    Column("created_at_ms", BigInteger, nullable=False),
    Column("revoked_at_ms", BigInteger),
)
