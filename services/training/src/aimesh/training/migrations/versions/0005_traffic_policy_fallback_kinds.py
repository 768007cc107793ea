"""traffic policies: the rule and previous-version fallback kinds (NULL unless the revision's kind)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("traffic_policies", sa.Column("fallback_rule", sa.LargeBinary, nullable=True))
    op.add_column("traffic_policies", sa.Column("fallback_version", sa.BigInteger, nullable=True))


def downgrade() -> None:
    op.drop_column("traffic_policies", "fallback_version")
    op.drop_column("traffic_policies", "fallback_rule")
