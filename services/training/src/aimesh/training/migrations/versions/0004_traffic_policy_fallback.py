"""traffic policies: a fallback constant score per revision (NULL: no fallback)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("traffic_policies", sa.Column("fallback_constant_score", sa.Double, nullable=True))


def downgrade() -> None:
    op.drop_column("traffic_policies", "fallback_constant_score")
