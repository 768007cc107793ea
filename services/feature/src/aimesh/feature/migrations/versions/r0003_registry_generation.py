"""the registry generation: one row that serialises applies and tells replicas when to reload

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
    registry = op.create_table(
        "feature_registry",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(registry, [{"id": 1, "generation": 0}])


def downgrade() -> None:
    op.drop_table("feature_registry")
