"""online state per feature view, the definitions registry and backfill records

Replaces the fixed-column tables of 0001 (their state is rebuilt from the lake by the backfill
that runs when the views are first registered).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("feature_entity_last")
    op.drop_table("feature_seen_values")
    op.drop_index("ix_feature_events_entity_ts", "feature_events")
    op.drop_table("feature_events")
    op.create_table(
        "feature_view_events",
        sa.Column("view", sa.String(100), primary_key=True),
        sa.Column("entity_id", sa.String(128), primary_key=True),
        sa.Column("event_id", sa.String(128), primary_key=True),
        sa.Column("ts_us", sa.BigInteger, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
    )
    op.create_index("ix_feature_view_events_entity_ts", "feature_view_events", ["view", "entity_id", "ts_us"])
    op.create_table(
        "feature_view_seen",
        sa.Column("view", sa.String(100), primary_key=True),
        sa.Column("entity_id", sa.String(128), primary_key=True),
        sa.Column("field", sa.String(100), primary_key=True),
        sa.Column("value", sa.String(256), primary_key=True),
        sa.Column("first_seen_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "feature_definitions",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("created_at_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "feature_backfills",
        sa.Column("view", sa.String(100), primary_key=True),
        sa.Column("layout", sa.Text, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("finished_at_us", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("feature_backfills")
    op.drop_table("feature_definitions")
    op.drop_table("feature_view_seen")
    op.drop_index("ix_feature_view_events_entity_ts", "feature_view_events")
    op.drop_table("feature_view_events")
