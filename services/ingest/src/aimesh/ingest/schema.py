"""The ingest service's tables (SQLAlchemy Core); migrations in ``migrations/`` (Alembic).

``aimesh.core.sql.migrate`` applies them when the service starts.
"""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, DateTime, Integer, MetaData, String, Table

metadata = MetaData()

seen_events = Table(
    "ingest_seen_events",
    metadata,
    Column("source", String(128), primary_key=True),
    Column("event_id", String(256), primary_key=True),
    Column("topic", String(255), nullable=False),
    Column("partition", Integer, nullable=False),
    Column("offset", BigInteger, nullable=False),
)
"""Every accepted upstream event id with the (topic, partition, offset) where it was first accepted
(``aimesh.ingest.seen_store``)."""

source_versions = Table(
    "ingest_source_versions",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("definition", JSON, nullable=False),
    Column("create_time", DateTime(timezone=True), nullable=False),
)
"""One row per stored version of a source definition (``aimesh.ingest.registry``)."""
