"""source registry: every version of every source definition

Revision ID: 0002_source_registry
Revises: 0001_seen_events
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_source_registry"
down_revision = "0001_seen_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_source_versions",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("definition", sa.JSON, nullable=False),
        sa.Column("create_time", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingest_source_versions")
