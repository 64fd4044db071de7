"""donor store: pledges, receipt counters, idempotency keys, notification nonces, donor data

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06

The API's tables for donors (services/donors/adapters/tables.py). They live in
the ledger's database so one `charity-ledger migrate` sets up everything, but
the ledger writes none of them (it reads the donors' data keys only), and they
are not append-only: personal data here can be erased.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pledges",
        sa.Column("donation_id", sa.String(36), primary_key=True),
        sa.Column("out_trade_no", sa.String(32), nullable=False, unique=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("venue_id", sa.String(64)),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("anonymity", sa.String(16), nullable=False),
        sa.Column("donor_ref", sa.String(36), nullable=False),
        sa.Column("client_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("provider_charge_id", sa.String(64), unique=True),
        sa.Column("paid_at_ms", sa.BigInteger()),
        sa.Column("fee_fen", sa.BigInteger()),
        sa.Column("receipt_no", sa.String(40), unique=True),
        sa.Column("verification_code", sa.String(16), nullable=False),
        sa.Column("failure_reason", sa.Text()),
    )
    op.create_index("ix_pledges_client", "pledges", ["client_hash", "created_at_ms"])
    op.create_index("ix_pledges_project", "pledges", ["project_id", "created_at_ms"])
    op.create_index("ix_pledges_pending", "pledges", ["status", "expires_at_ms"])
    op.create_table(
        "receipt_counters",
        sa.Column("org_code", sa.String(16), primary_key=True),
        sa.Column("year", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last_no", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("donation_id", sa.String(36), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_idempotency_keys_created_at_ms", "idempotency_keys", ["created_at_ms"])
    op.create_table(
        "notification_nonces",
        sa.Column("nonce", sa.String(64), primary_key=True),
        sa.Column("seen_at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_notification_nonces_seen_at_ms", "notification_nonces", ["seen_at_ms"])
    op.create_table(
        "donor_data",
        sa.Column("donor_ref", sa.String(36), primary_key=True),
        sa.Column("data_key", sa.Text()),
        sa.Column("display_name", sa.Text()),
        sa.Column("message", sa.Text()),
        sa.Column("erased_at_ms", sa.BigInteger()),
    )


def downgrade() -> None:
    for table in ("donor_data", "notification_nonces", "idempotency_keys", "receipt_counters", "pledges"):
        op.drop_table(table)
