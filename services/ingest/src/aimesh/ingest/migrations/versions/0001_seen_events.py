"""seen upstream event ids: (source, event_id) -> first accepted (topic, partition, offset)

Revision ID: 0001_seen_events
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_seen_events"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_seen_events",
        sa.Column("source", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.String(256), primary_key=True),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("partition", sa.Integer, nullable=False),
        sa.Column("offset", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingest_seen_events")
