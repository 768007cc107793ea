"""input profiles (the per-input drift reference) on runs and model versions (NULL before they existed)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("runs", sa.Column("input_profiles", sa.LargeBinary, nullable=True))
    op.add_column("model_versions", sa.Column("input_profiles", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    op.drop_column("model_versions", "input_profiles")
    op.drop_column("runs", "input_profiles")
