"""The feature service's tables (created by the Alembic migrations next to it).

Online state, keyed by feature view; every effect of a consumed record is insert-or-ignore or a
monotonic upsert, so applying a record twice changes nothing:

- ``feature_view_events``: each (view, entity)'s retained events (pruned to the view's retention
  before the entity's newest event), keyed by event id; ``payload`` holds the fields the view reads (JSON);
- ``feature_view_seen``: per ``is_new`` field, every value an entity took and its first event time;
- ``feature_consumer_offsets``: per topic partition, the next offset to apply (written with the effects).

Registry:

- ``feature_definitions``: every version of every entity, feature view and feature service (JSON spec);
  rows are only ever inserted;
- ``feature_registry``: one row (``id`` 1) whose ``generation`` grows by one with every apply that stores
  definitions; an apply updates it first, so applies are serialised by its row lock, and replicas poll it
  to notice definitions applied elsewhere;
- ``feature_backfills``: per view, the storage layout its online state was last backfilled for.

``upsert`` writes rows of these tables on SQLite and PostgreSQL alike.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

MIGRATIONS = Path(__file__).with_name("migrations")
"""The Alembic migrations of these tables (``aimesh.core.sql.migrate``)."""

metadata = MetaData()

view_events = Table(
    "feature_view_events",
    metadata,
    Column("view", String(100), primary_key=True),
    Column("entity_id", String(128), primary_key=True),
    Column("event_id", String(128), primary_key=True),
    Column("ts_us", BigInteger, nullable=False),
    Column("payload", Text, nullable=False),
    Index("ix_feature_view_events_entity_ts", "view", "entity_id", "ts_us"),
)

view_seen = Table(
    "feature_view_seen",
    metadata,
    Column("view", String(100), primary_key=True),
    Column("entity_id", String(128), primary_key=True),
    Column("field", String(100), primary_key=True),
    Column("value", String(256), primary_key=True),
    Column("first_seen_us", BigInteger, nullable=False),
)

consumer_offsets = Table(
    "feature_consumer_offsets",
    metadata,
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)

definitions = Table(
    "feature_definitions",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("name", String(100), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("spec", Text, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)

registry = Table(
    "feature_registry",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("generation", BigInteger, nullable=False),
)

backfills = Table(
    "feature_backfills",
    metadata,
    Column("view", String(100), primary_key=True),
    Column("layout", Text, nullable=False),
    Column("rows", BigInteger, nullable=False),
    Column("finished_at_us", BigInteger, nullable=False),
)


async def upsert(
    conn: AsyncConnection,
    table: Table,
    keys: Sequence[str],
    rows: list[dict[str, Any]],
    *,
    keep: Literal["min", "max", "new"],
) -> None:
    """Insert ``rows``; where the key exists keep the smaller / larger value of the one non-key column
    (``min`` / ``max``: monotonic, never goes back), or overwrite the non-key columns (``new``)."""
    if not rows:
        return
    pg = conn.dialect.name == "postgresql"
    insert = postgresql.insert(table) if pg else sqlite.insert(table)
    others = [c.name for c in table.columns if c.name not in keys]
    update: dict[str, Any]
    if keep == "new":
        update = {name: insert.excluded[name] for name in others}
    else:
        pick = {"min": func.least if pg else func.min, "max": func.greatest if pg else func.max}[keep]
        update = {name: pick(table.c[name], insert.excluded[name]) for name in others}
    await conn.execute(insert.on_conflict_do_update(index_elements=list(keys), set_=update), rows)


async def upsert_row(conn: AsyncConnection, table: Table, keys: Sequence[str], row: dict[str, Any]) -> None:
    """Insert ``row`` or overwrite the non-key columns of the row with the same ``keys``."""
    await upsert(conn, table, keys, [row], keep="new")
