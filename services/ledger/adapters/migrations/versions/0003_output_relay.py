"""output relay: watermarks of what the broker acknowledged, and the feed outbox

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

output_watermarks holds, per output stream, how far the broker has
acknowledged it: 'journal' is the highest journal seq whose outcome, feed item,
totals and journal record were all acknowledged; 'tree-heads' the largest tree
size whose signed head was. A ledger resumes publishing after them, so nothing
derived goes missing (it may repeat). A database that already has a journal
starts with both at what it holds: its outputs were published by the ledger that
wrote it.

feed_outbox holds a gift's feed item (the name as the donor consented to show
it, masked, and the message) from its commit until the broker acknowledged it:
the journal never holds personal data, so the relay finds it here, and deletes
it once published.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    watermarks = op.create_table(
        "output_watermarks",
        sa.Column("stream", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("stream"),
    )
    op.create_table(
        "feed_outbox",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("fields", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    bind = op.get_bind()
    journal_seq = bind.scalar(sa.text("SELECT seq FROM chain_head WHERE id = 1")) or 0
    head_size = bind.scalar(sa.text("SELECT MAX(tree_size) FROM tree_heads")) or 0
    op.bulk_insert(
        watermarks, [{"stream": "journal", "seq": journal_seq}, {"stream": "tree-heads", "seq": head_size}]
    )


def downgrade() -> None:
    op.drop_table("feed_outbox")
    op.drop_table("output_watermarks")
