"""project_totals.resumes_to: the state a suspended project resumes in

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06

ProjectResumed returns a suspended project to the state it was suspended from
(fundraising, fundraising closed, executing...). The projection keeps that
state while the project is suspended; null otherwise. A projection rebuilt from
the journal fills it in for projects suspended before this column existed.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("project_totals") as batch:
        batch.add_column(sa.Column("resumes_to", sa.String(24), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("project_totals") as batch:
        batch.drop_column("resumes_to")
