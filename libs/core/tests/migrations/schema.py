"""A tiny schema used to test the SQL helpers and Alembic wiring."""

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table

metadata = MetaData()

processed = Table(
    "processed_events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("partition", Integer, nullable=False),
    Column("offset", Integer, nullable=False),
    Column("handled_at", DateTime(timezone=True), nullable=False),
)
