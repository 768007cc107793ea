"""The training service's tables (SQLAlchemy Core): runs, the model registry (with traffic policies), and
the event outbox.

Migrations live in ``migrations/`` (Alembic); ``aimesh.core.sql.migrate`` applies them on start.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Double,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("idempotency_key", String(256), unique=True, nullable=True),
    Column("model_name", String(256), nullable=False, index=True),
    Column("status", Integer, nullable=False),
    Column("spec", LargeBinary, nullable=False),
    Column("trigger", String(256), nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("error_message", Text, nullable=False),
    Column("model_version", BigInteger, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("start_time", DateTime(timezone=True), nullable=True),
    Column("end_time", DateTime(timezone=True), nullable=True),
    Column("artifact_path", Text, nullable=True),
    Column("features", JSON, nullable=True),
    Column("reference_profile", LargeBinary, nullable=True),
    Column("signature", LargeBinary, nullable=True),
    Column("input_profiles", LargeBinary, nullable=True),
)

models = Table(
    "models",
    metadata,
    Column("name", String(256), primary_key=True),
    Column("create_time", DateTime(timezone=True), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("model_name", String(256), primary_key=True),
    Column("version", BigInteger, primary_key=True, autoincrement=False),
    Column("run_id", String(64), nullable=False),
    Column("features", JSON, nullable=False),
    Column("feature_service", String(256), nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("reference_profile", LargeBinary, nullable=False),
    Column("artifact_uri", Text, nullable=False),
    Column("triton_model_name", String(256), nullable=False),
    Column("triton_model_version", BigInteger, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("signature", LargeBinary, nullable=True),
    Column("input_profiles", LargeBinary, nullable=True),
    ForeignKeyConstraint(["model_name"], ["models.name"]),
    Index("uq_model_versions_run", "model_name", "run_id", unique=True),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_name", String(256), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("update_time", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(["model_name", "version"], ["model_versions.model_name", "model_versions.version"]),
)

alias_audit = Table(
    "alias_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("model_name", String(256), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("previous_version", BigInteger, nullable=False),
    Column("new_version", BigInteger, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("reason", Text, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Index("ix_alias_audit_model", "model_name", "alias", "id"),
)

traffic_policies = Table(
    "traffic_policies",
    metadata,
    Column("model_name", String(256), primary_key=True),
    Column("revision", BigInteger, primary_key=True, autoincrement=False),
    Column("canary_version", BigInteger, nullable=False),
    Column("canary_weight", Double, nullable=False),
    Column("shadow_version", BigInteger, nullable=False),
    Column("shadow_share", Double, nullable=False),
    Column("fallback_constant_score", Double, nullable=True),
    Column("fallback_rule", LargeBinary, nullable=True),
    Column("fallback_version", BigInteger, nullable=True),
    Column("actor", String(256), nullable=False),
    Column("reason", Text, nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    ForeignKeyConstraint(["model_name"], ["models.name"]),
)
"""One row per revision of a model's traffic policy (its audit); the current policy is the newest revision.
The revision's fallback is in the column of its kind, the others NULL (all NULL: no fallback):
``fallback_constant_score`` (``Fallback.constant_score``), ``fallback_rule`` (the serialized
``FallbackRule``), ``fallback_version`` (``PreviousVersionFallback.version``)."""

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", String(512), nullable=False, unique=True),
    Column("topic", String(256), nullable=False),
    Column("key", String(256), nullable=False),
    Column("event_type", String(256), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
    Column("published_time", DateTime(timezone=True), nullable=True),
    Index("ix_outbox_pending", "published_time", "id"),
)
