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
"""

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

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
