"""suspense resolutions: requests to redirect or refund money held in suspense, and their fate

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

Money a project could not take waits in `suspense:<project>` until one person
asks to redirect or refund it and a second approves (services/ledger/domain/
suspense.py). The requests are a projection like disbursements, rebuilt from the
journal; `redirected_in_fen` is what a project received from others' suspense.
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "suspense_resolutions",
        sa.Column("resolution_id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_fen", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(200), nullable=False),
        sa.Column("target_project_id", sa.String(64)),
        sa.Column("donation_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("approved_by", sa.String(200)),
    )
    with op.batch_alter_table("suspense_resolutions") as batch:
        batch.create_index(batch.f("ix_suspense_resolutions_project_id"), ["project_id"], unique=False)
    with op.batch_alter_table("project_totals") as batch:
        batch.add_column(sa.Column("redirected_in_fen", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("project_totals") as batch:
        batch.drop_column("redirected_in_fen")
    op.drop_table("suspense_resolutions")
