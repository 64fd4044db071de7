"""writer lease: exactly one ledger writes at a time

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06

writer_lease is one row: which ledger holds the right to write, under which
epoch, until when. The holder renews it every second; every batch transaction
checks it (same holder, same epoch, not expired) before it commits, so a ledger
that lost the lease, say after a pause, can commit nothing. A standby takes
the lease over once it has expired.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    lease = op.create_table(
        "writer_lease",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        # Milliseconds since the epoch by the database's clock: one clock for every instance.
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(lease, [{"id": 1, "holder": "", "epoch": 0, "expires_at_ms": 0}])


def downgrade() -> None:
    op.drop_table("writer_lease")
