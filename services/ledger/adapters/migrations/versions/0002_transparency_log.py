"""transparency log: Merkle leaves, signed tree heads, donor refs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

merkle_leaves holds, for each journal entry, SHA-256(0x00 || canonical entry):
written in the same transaction as the entry, so proofs never need to re-read
the whole journal. tree_heads keeps every signed tree head ever published.
Both are append-only, like the journal. donations.donor_ref lets the ledger
count distinct donors without reading personal data.
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "merkle_leaves",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("leaf_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_table(
        "tree_heads",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root_hash", sa.String(length=64), nullable=False),
        sa.Column("timestamp_ms", sa.BigInteger(), nullable=False),
        sa.Column("signature", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("tree_size"),
    )
    with op.batch_alter_table("donations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("donor_ref", sa.String(length=64), nullable=True))
    _backfill_leaves()
    for table in ("merkle_leaves", "tree_heads"):
        _append_only(table)


def _backfill_leaves() -> None:
    """Entries written before this revision get their leaves from their stored content."""
    import hashlib

    bind = op.get_bind()
    journal = sa.table("journal", sa.column("seq"), sa.column("canonical"))
    leaves = sa.table("merkle_leaves", sa.column("seq"), sa.column("leaf_hash"))
    rows = [
        {"seq": r.seq, "leaf_hash": hashlib.sha256(b"\x00" + r.canonical.encode("utf-8")).hexdigest()}
        for r in bind.execute(sa.select(journal).order_by(journal.c.seq))
    ]
    if rows:
        bind.execute(leaves.insert(), rows)


def _append_only(table: str) -> None:
    # Same guard as the journal's (0001): refuse UPDATE and DELETE in the database itself.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_journal_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION refuse_journal_change()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'the journal is append-only: {action} on {table} refused'); END"
        )


def downgrade() -> None:
    with op.batch_alter_table("donations", schema=None) as batch_op:
        batch_op.drop_column("donor_ref")
    op.drop_table("tree_heads")
    op.drop_table("merkle_leaves")
