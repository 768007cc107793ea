"""The durable ``SeenStore``: table ``ingest_seen_events`` keyed by (source, event_id) with the first position.

SQLite by default, PostgreSQL by URL (``aimesh.core.sql``); replicas that share the database drop each
other's duplicates. A claim is one database transaction: insert the new ids (an existing row wins;
the insert returns the ids it stored, whose first position is the given one), then read back the
recorded position of the ids that were there already (none in the common case: no second query).
Rows are never updated, so the first position of an id is fixed once committed; the table grows by
one row per accepted record (no pruning yet).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import islice

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.core.sql import insert_new
from aimesh.ingest.dedupe import Position
from aimesh.ingest.schema import seen_events

CHUNK = 500
"""Ids per statement (keeps the bound parameters under SQLite's limit whatever the batch size)."""


def _chunks(ids: Sequence[str]) -> Iterator[list[str]]:
    it = iter(ids)
    while chunk := list(islice(it, CHUNK)):
        yield chunk


class SqlSeenStore:
    """``aimesh.ingest.dedupe.SeenStore`` over ``engine`` (migrated by ``aimesh.ingest.migrations``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def claim(self, source: str, positions: Mapping[str, Position]) -> dict[str, Position]:
        """See ``SeenStore.claim``; committed when it returns, raises SQLAlchemy's errors."""
        if not positions:
            return {}
        ids = list(positions)
        first: dict[str, Position] = {}
        async with self._engine.begin() as conn:
            for chunk in _chunks(ids):
                rows = [
                    {"source": source, "event_id": i, "topic": t, "partition": p, "offset": o}
                    for i in chunk
                    for t, p, o in (positions[i],)
                ]
                for _source, event_id in await insert_new(conn, seen_events, rows):
                    first[event_id] = positions[event_id]
                known = [i for i in chunk if i not in first]
                if not known:
                    continue
                c = seen_events.c
                result = await conn.execute(
                    select(c.event_id, c.topic, c.partition, c.offset).where(c.source == source, c.event_id.in_(known))
                )
                for event_id, topic, partition, offset in result:
                    first[event_id] = (topic, partition, offset)
        return first
