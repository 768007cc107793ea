"""online store: events, seen values, newest event time, consumed offsets

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_events",
        sa.Column("entity_type", sa.String(32), primary_key=True),
        sa.Column("entity_id", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("ts_us", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.Double, nullable=False),
        sa.Column("merchant_id", sa.String(128), nullable=False),
    )
    op.create_index("ix_feature_events_entity_ts", "feature_events", ["entity_type", "entity_id", "ts_us"])
    op.create_table(
        "feature_seen_values",
        sa.Column("entity_type", sa.String(32), primary_key=True),
        sa.Column("entity_id", sa.String(128), primary_key=True),
        sa.Column("field", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(256), primary_key=True),
    )
    op.create_table(
        "feature_entity_last",
        sa.Column("entity_type", sa.String(32), primary_key=True),
        sa.Column("entity_id", sa.String(128), primary_key=True),
        sa.Column("last_event_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "feature_consumer_offsets",
        sa.Column("topic", sa.String(255), primary_key=True),
        sa.Column("partition", sa.Integer, primary_key=True),
        sa.Column("next_offset", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feature_consumer_offsets")
    op.drop_table("feature_entity_last")
    op.drop_table("feature_seen_values")
    op.drop_index("ix_feature_events_entity_ts", "feature_events")
    op.drop_table("feature_events")
