"""staff accounts: accounts, scopes, server-side sessions and the access log

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06

The API's tables for staff (services/staff/adapters/tables.py). Like the donor
store they live in the ledger's database so one `charity-ledger migrate` sets
up everything, and the ledger reads none of them. The access log is
append-only: the database itself refuses to change or delete what it recorded.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "staff_accounts",
        sa.Column("username", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("disabled_at_ms", sa.BigInteger()),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("last_failure_ms", sa.BigInteger()),
    )
    op.create_table(
        "staff_scopes",
        sa.Column("username", sa.String(32), sa.ForeignKey("staff_accounts.username"), primary_key=True),
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("scope_id", sa.String(64), primary_key=True),
    )
    op.create_table(
        "staff_sessions",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("username", sa.String(32), sa.ForeignKey("staff_accounts.username"), nullable=False),
        sa.Column("created_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_staff_sessions_username", "staff_sessions", ["username"])
    op.create_table(
        "access_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("at_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(64)),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("client", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_access_log_at_ms", "access_log", ["at_ms"])
    _append_only("access_log")


def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION refuse_access_log_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'the access log is append-only: % on % refused', TG_OP, TG_TABLE_NAME; "
            "END $$"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_access_log_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION refuse_access_log_change()"
        )
        return
    for action in ("UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'the access log is append-only: {action} on {table} refused'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE access_log")
        op.execute("DROP FUNCTION refuse_access_log_change()")
    else:
        op.drop_table("access_log")
    for table in ("staff_sessions", "staff_scopes", "staff_accounts"):
        op.drop_table(table)
