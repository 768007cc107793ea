"""runs, model registry (models, versions, aliases, alias audit) and the event outbox

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
    tz = sa.DateTime(timezone=True)
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("idempotency_key", sa.String(256), unique=True, nullable=True),
        sa.Column("model_name", sa.String(256), nullable=False, index=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("spec", sa.LargeBinary, nullable=False),
        sa.Column("trigger", sa.String(256), nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("error_message", sa.Text, nullable=False),
        sa.Column("model_version", sa.BigInteger, nullable=False),
        sa.Column("create_time", tz, nullable=False),
        sa.Column("start_time", tz, nullable=True),
        sa.Column("end_time", tz, nullable=True),
        sa.Column("artifact_path", sa.Text, nullable=True),
        sa.Column("features", sa.JSON, nullable=True),
        sa.Column("reference_profile", sa.LargeBinary, nullable=True),
    )
    op.create_table(
        "models",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("create_time", tz, nullable=False),
    )
    op.create_table(
        "model_versions",
        sa.Column("model_name", sa.String(256), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("features", sa.JSON, nullable=False),
        sa.Column("feature_service", sa.String(256), nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("reference_profile", sa.LargeBinary, nullable=False),
        sa.Column("artifact_uri", sa.Text, nullable=False),
        sa.Column("triton_model_name", sa.String(256), nullable=False),
        sa.Column("triton_model_version", sa.BigInteger, nullable=False),
        sa.Column("create_time", tz, nullable=False),
        sa.ForeignKeyConstraint(["model_name"], ["models.name"]),
    )
    op.create_index("uq_model_versions_run", "model_versions", ["model_name", "run_id"], unique=True)
    op.create_table(
        "aliases",
        sa.Column("model_name", sa.String(256), primary_key=True),
        sa.Column("alias", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("update_time", tz, nullable=False),
        sa.ForeignKeyConstraint(["model_name", "version"], ["model_versions.model_name", "model_versions.version"]),
    )
    op.create_table(
        "alias_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(256), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("previous_version", sa.BigInteger, nullable=False),
        sa.Column("new_version", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("time", tz, nullable=False),
    )
    op.create_index("ix_alias_audit_model", "alias_audit", ["model_name", "alias", "id"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(512), nullable=False, unique=True),
        sa.Column("topic", sa.String(256), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("event_type", sa.String(256), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("create_time", tz, nullable=False),
        sa.Column("published_time", tz, nullable=True),
    )
    op.create_index("ix_outbox_pending", "outbox", ["published_time", "id"])


def downgrade() -> None:
    for index, table in (("ix_outbox_pending", "outbox"), ("ix_alias_audit_model", "alias_audit")):
        op.drop_index(index, table_name=table)
    op.drop_index("uq_model_versions_run", table_name="model_versions")
    for table in ("outbox", "alias_audit", "aliases", "model_versions", "models", "runs"):
        op.drop_table(table)
