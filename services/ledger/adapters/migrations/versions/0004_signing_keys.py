"""signing keys: the public keys that sign tree heads, and each head's key id

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06

signing_keys keeps every public key that has signed tree heads (its id, the hex
SHA-256 of the raw key, the algorithm, the PEM and when it came into use): keys
are rotated by adding one, never by editing, so the table is append-only.
tree_heads.key_id names the key of each head; heads signed before this
revision have none, and were signed by the oldest key.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signing_keys",
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
    )
    # A plain ADD COLUMN: SQLite's batch mode would copy the table and lose its
    # append-only triggers.
    op.add_column("tree_heads", sa.Column("key_id", sa.String(length=64), nullable=True))
    _append_only("signing_keys")


def _append_only(table: str) -> None:
    # As in 0002 (each revision keeps its own copy: a migration must not change
    # when later code does). refuse_journal_change() comes from 0001.
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
            f"BEGIN SELECT RAISE(ABORT, 'signing keys are append-only: {action} on {table} refused'); END"
        )


def downgrade() -> None:
    op.drop_column("tree_heads", "key_id")
    op.drop_table("signing_keys")
