"""machine tokens: named, scoped credentials of machine clients

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

`charity-ledger staff token add NAME --permission …` prints a token once and
keeps only its SHA-256 here, with the permissions it carries
(services/staff/adapters/tables.py). A revoked token keeps its row, so a name
is never given to a second token.
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "machine_tokens",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("permissions", sa.Text(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at_ms", sa.BigInteger()),
    )


def downgrade() -> None:
    op.drop_table("machine_tokens")
