"""traffic policies: one row per revision of a model's canary / shadow split

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "traffic_policies",
        sa.Column("model_name", sa.String(256), primary_key=True),
        sa.Column("revision", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("canary_version", sa.BigInteger, nullable=False),
        sa.Column("canary_weight", sa.Double, nullable=False),
        sa.Column("shadow_version", sa.BigInteger, nullable=False),
        sa.Column("shadow_share", sa.Double, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["model_name"], ["models.name"]),
    )


def downgrade() -> None:
    op.drop_table("traffic_policies")
