"""The durable ``SeenStore``: table ``ingest_seen_events`` keyed by (source, event_id) with the first position.

SQLite by default, PostgreSQL by URL (``aimesh.core.sql``); replicas that share the database drop each
other's duplicates. A claim is one database transaction: insert the new ids (an existing row wins),
then read back every given id's recorded position. Rows are never updated, so the first position of
an id is fixed once committed; the table grows by one row per accepted record (no pruning yet).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from itertools import islice

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.core.sql import insert_ignoring_duplicates
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
                await insert_ignoring_duplicates(conn, seen_events, rows)
                c = seen_events.c
                result = await conn.execute(
                    select(c.event_id, c.topic, c.partition, c.offset).where(c.source == source, c.event_id.in_(chunk))
                )
                for event_id, topic, partition, offset in result:
                    first[event_id] = (topic, partition, offset)
        return first
