"""model signatures on runs and model versions

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
    op.add_column("runs", sa.Column("signature", sa.LargeBinary, nullable=True))
    op.add_column("model_versions", sa.Column("signature", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    op.drop_column("model_versions", "signature")
    op.drop_column("runs", "signature")
