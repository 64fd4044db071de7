"""documents: what is known of each uploaded supporting document and piece of evidence

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

The API's table for disbursement documents (services/staff/adapters/documents.py):
the bytes live in a directory under their SHA-256 (CHARITY_DOCUMENTS_DIR); this
row per project and hash keeps the media type found in the content, the size,
the uploader's file name, who uploaded it and when. The ledger reads none of it;
its journal keeps only the hashes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), primary_key=True),
        sa.Column("media_type", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("uploaded_by", sa.String(64), nullable=False),
        sa.Column("uploaded_at_ms", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("documents")
