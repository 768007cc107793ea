"""The online store's tables (owned by the feature service; created by the Alembic migrations next to it).

Every effect of a consumed record is insert-or-ignore or a monotonic upsert, so applying a record twice
(or two consumers racing on one customer) changes nothing:

- ``feature_events``: each entity's recent transactions (pruned to the longest window), keyed by event id;
- ``feature_seen_values``: every value an entity's IS_NEW fields (country, device_id) ever took;
- ``feature_entity_last``: each entity's newest event time (kept beyond the pruned window);
- ``feature_consumer_offsets``: per topic partition, the next offset to apply (written with the effects).
"""

from sqlalchemy import BigInteger, Column, Double, Index, Integer, MetaData, String, Table

metadata = MetaData()

events = Table(
    "feature_events",
    metadata,
    Column("entity_type", String(32), primary_key=True),
    Column("entity_id", String(128), primary_key=True),
    Column("event_id", String(128), primary_key=True),
    Column("ts_us", BigInteger, nullable=False),
    Column("amount", Double, nullable=False),
    Column("merchant_id", String(128), nullable=False),
    Index("ix_feature_events_entity_ts", "entity_type", "entity_id", "ts_us"),
)

seen_values = Table(
    "feature_seen_values",
    metadata,
    Column("entity_type", String(32), primary_key=True),
    Column("entity_id", String(128), primary_key=True),
    Column("field", String(64), primary_key=True),
    Column("value", String(256), primary_key=True),
)

entity_last = Table(
    "feature_entity_last",
    metadata,
    Column("entity_type", String(32), primary_key=True),
    Column("entity_id", String(128), primary_key=True),
    Column("last_event_us", BigInteger, nullable=False),
)

consumer_offsets = Table(
    "feature_consumer_offsets",
    metadata,
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", BigInteger, nullable=False),
)
