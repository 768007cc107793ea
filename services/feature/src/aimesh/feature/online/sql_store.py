"""The SQL online store (SQLite or PostgreSQL, the service's own database): per (feature view, entity)
retained events, updated with exactly-once effect.

``apply`` writes a partition batch's effects and that partition's next offset in ONE transaction;
records below the stored offset are skipped, so a redelivery or a crash between the database commit
and the Kafka commit never counts an event twice. The effects are themselves idempotent (events
keyed by event id, first-seen times as a min), so a duplicate of an event under a new offset, a
backfill overlapping the stream, or two consumers racing on one entity leave the same state.

An event older than the entity's newest event in the view minus the allowed lateness is skipped
online (``ApplyResult.late``); it stays in the lake for offline use.

Reads go through a bounded in-process cache of histories (``cache``) that this store
invalidates after each of its writes; it assumes this process is the database's only writer
(``cache_entries=0`` turns it off for deployments with several writers).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import BigInteger, ColumnElement, Table, and_, bindparam, delete, func, literal, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aimesh.core.sql import insert_ignoring_duplicates, migrate, ping
from aimesh.feature import schema
from aimesh.feature.history import EMPTY_HISTORY, EntityHistory, HistoryEvent, StateKey, micros
from aimesh.feature.online.cache import HistoryCache
from aimesh.feature.online.protocol import DEFAULT_ALLOWED_LATENESS, DEFAULT_CACHE_ENTRIES, ApplyResult
from aimesh.feature.records import ViewEvent


def _keys_filter(table: Table, keys: Iterable[StateKey]) -> ColumnElement[bool]:
    by_view: dict[str, set[str]] = defaultdict(set)
    for view, entity_id in keys:
        by_view[view].add(entity_id)
    return or_(
        *(and_(table.c.view == view, table.c.entity_id.in_(sorted(ids))) for view, ids in sorted(by_view.items()))
    )


def _event_row(ve: ViewEvent) -> dict[str, Any]:
    return {
        "view": ve.view,
        "entity_id": ve.entity_id,
        "event_id": ve.event.event_id,
        "ts_us": ve.event.ts_us,
        "payload": orjson.dumps(dict(ve.event.values)).decode(),
    }


class SqlOnlineStore:
    """The online store over an async SQLAlchemy engine (SQLite or PostgreSQL); ``OnlineStateStore``."""

    kind = "sql"

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        allowed_lateness: timedelta = DEFAULT_ALLOWED_LATENESS,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
    ) -> None:
        self.engine = engine
        self.allowed_lateness_us = micros(allowed_lateness)
        self.cache = HistoryCache(cache_entries)

    async def migrate(self) -> None:
        """Create or upgrade the tables (idempotent; run at start)."""
        await migrate(self.engine, schema.MIGRATIONS)

    async def ping(self) -> None:
        """Raise unless the database answers (readiness)."""
        await ping(self.engine)

    async def aclose(self) -> None:
        """Nothing to release: the engine is the caller's (it disposes of it)."""

    async def next_offset(self, topic: str, partition: int) -> int:
        """The first offset of ``topic``/``partition`` not applied yet (0 when none was)."""
        async with self.engine.connect() as conn:
            return await self._next_offset(conn, topic, partition)

    @staticmethod
    async def _next_offset(conn: AsyncConnection, topic: str, partition: int) -> int:
        t = schema.consumer_offsets
        stored = await conn.scalar(select(t.c.next_offset).where(t.c.topic == topic, t.c.partition == partition))
        return int(stored) if stored is not None else 0

    async def offsets(self) -> dict[tuple[str, int], int]:
        """Every stored (topic, partition) -> next offset."""
        t = schema.consumer_offsets
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.c.topic, t.c.partition, t.c.next_offset))).all()
        return {(r.topic, r.partition): int(r.next_offset) for r in rows}

    async def apply(
        self,
        topic: str,
        partition: int,
        records: Sequence[tuple[int, Sequence[ViewEvent] | None]],
        retention_us: Mapping[str, int],
    ) -> ApplyResult:
        """Apply one partition batch: ``(offset, view events)`` in offset order, None for records without
        effect. Commits the effects and the next offset together.

        Records at offsets below the stored next offset are skipped; view events later than the allowed
        lateness are skipped and counted. Each touched (view, entity) is pruned to ``retention_us[view]``
        before its newest event. Raises SQLAlchemy errors when the database fails (nothing is written).
        """
        if not records:
            return ApplyResult(0, 0)
        try:
            async with self.engine.begin() as conn:
                stored = await self._next_offset(conn, topic, partition)
                fresh = [(offset, ves) for offset, ves in records if offset >= stored and ves is not None]
                skipped = sum(1 for offset, _ in records if offset < stored)
                events = [ve for _, ves in fresh for ve in ves]
                on_time = await self._on_time(conn, events)
                await self._write(conn, on_time, retention_us, overwrite=False)
                await schema.upsert(
                    conn,
                    schema.consumer_offsets,
                    ["topic", "partition"],
                    [{"topic": topic, "partition": partition, "next_offset": records[-1][0] + 1}],
                    keep="max",
                )
        finally:
            self.cache.invalidate({(ve.view, ve.entity_id) for _, ves in records for ve in ves or ()})
        return ApplyResult(len(fresh), skipped, len(events) - len(on_time))

    async def _on_time(self, conn: AsyncConnection, events: Sequence[ViewEvent]) -> list[ViewEvent]:
        if not events:
            return []
        newest = await self._newest(conn, {(ve.view, ve.entity_id) for ve in events})
        kept = []
        for ve in events:
            key = (ve.view, ve.entity_id)
            known = newest.get(key)
            if known is not None and ve.event.ts_us < known - self.allowed_lateness_us:
                continue
            kept.append(ve)
            newest[key] = ve.event.ts_us if known is None else max(known, ve.event.ts_us)
        return kept

    @staticmethod
    async def _newest(conn: AsyncConnection, keys: Iterable[StateKey]) -> dict[StateKey, int]:
        ev = schema.view_events
        rows = await conn.execute(
            select(ev.c.view, ev.c.entity_id, func.max(ev.c.ts_us))
            .where(_keys_filter(ev, keys))
            .group_by(ev.c.view, ev.c.entity_id)
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}

    async def write_backfill(self, events: Sequence[ViewEvent], retention_us: Mapping[str, int]) -> None:
        """Write events read from the lake (one transaction): stored payloads are overwritten (a view's
        layout may have changed), no lateness applies, offsets are untouched."""
        try:
            async with self.engine.begin() as conn:
                await self._write(conn, events, retention_us, overwrite=True)
        finally:
            self.cache.invalidate({(ve.view, ve.entity_id) for ve in events})

    async def _write(
        self, conn: AsyncConnection, events: Sequence[ViewEvent], retention_us: Mapping[str, int], *, overwrite: bool
    ) -> None:
        if not events:
            return
        unique = {(ve.view, ve.entity_id, ve.event.event_id): ve for ve in events}
        rows = [_event_row(unique[key]) for key in sorted(unique)]  # key order: index locality, fixed lock order
        if overwrite:
            await schema.upsert(conn, schema.view_events, ["view", "entity_id", "event_id"], rows, keep="new")
        else:
            await insert_ignoring_duplicates(conn, schema.view_events, rows)
        first: dict[tuple[str, str, str, str], int] = {}
        for ve in events:
            for name, value in ve.seen.items():
                key = (ve.view, ve.entity_id, name, value)
                first[key] = min(first.get(key, ve.event.ts_us), ve.event.ts_us)
        await schema.upsert(
            conn,
            schema.view_seen,
            ["view", "entity_id", "field", "value"],
            [
                {"view": v, "entity_id": e, "field": f, "value": x, "first_seen_us": ts}
                for (v, e, f, x), ts in sorted(first.items())
            ],
            keep="min",
        )
        await self._prune(conn, {(ve.view, ve.entity_id) for ve in events}, retention_us)

    @staticmethod
    async def _prune(conn: AsyncConnection, keys: set[StateKey], retention_us: Mapping[str, int]) -> None:
        """Delete each key's events at or before its newest stored event minus its view's retention.

        One fixed statement executed once per key (in key order): its newest time is one index lookup and
        the deleted events one range of the (view, entity_id, ts_us) index, so a write costs O(keys ·
        log n) whatever the table holds. (A single statement over all keys with a correlated newest
        scanned every stored event of those keys, and its SQL varied with the number of keys, so SQLite
        connections kept up to 128 prepared copies with thousands of parameters each.)
        """
        if not keys:
            return
        ev = schema.view_events
        newer = ev.alias("newer")
        view, entity_id = (
            bindparam("prune_view", type_=ev.c.view.type),
            bindparam("prune_entity", type_=ev.c.entity_id.type),
        )
        newest = select(func.max(newer.c.ts_us)).where(newer.c.view == view, newer.c.entity_id == entity_id)
        statement = delete(ev).where(
            ev.c.view == view,
            ev.c.entity_id == entity_id,
            ev.c.ts_us <= newest.scalar_subquery() - bindparam("prune_retention", type_=BigInteger),
        )
        await conn.execute(
            statement,
            [{"prune_view": v, "prune_entity": e, "prune_retention": retention_us[v]} for v, e in sorted(keys)],
        )

    async def newest_by_entity(self, view: str) -> list[tuple[str, int]]:
        """Every entity of ``view`` with stored events, and its newest event time (for sampling)."""
        ev = schema.view_events
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(ev.c.entity_id, func.max(ev.c.ts_us)).where(ev.c.view == view).group_by(ev.c.entity_id)
                )
            ).all()
        return [(str(entity_id), int(newest)) for entity_id, newest in rows]

    async def load(self, keys: Iterable[StateKey]) -> dict[StateKey, EntityHistory]:
        """The stored history of each (view, entity): from the cache, the misses in one statement (one
        database round trip), which are then cached.

        Keys without any event get ``EMPTY_HISTORY``. Raises SQLAlchemy errors when the database fails.
        """
        return await self.cache.read_through(keys, self._load_stored)

    async def _load_stored(self, keys: set[StateKey]) -> dict[StateKey, EntityHistory]:
        wanted = sorted(keys)
        ev, sv = schema.view_events, schema.view_seen
        statement = union_all(
            select(literal("e"), ev.c.view, ev.c.entity_id, ev.c.event_id, ev.c.payload, ev.c.ts_us).where(
                _keys_filter(ev, wanted)
            ),
            select(literal("s"), sv.c.view, sv.c.entity_id, sv.c.field, sv.c.value, sv.c.first_seen_us).where(
                _keys_filter(sv, wanted)
            ),
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        events: dict[StateKey, list[HistoryEvent]] = defaultdict(list)
        seen: dict[StateKey, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
        for kind, view, entity_id, text1, text2, number in rows:
            key = (view, entity_id)
            if kind == "e":
                events[key].append(HistoryEvent(text1, int(number), orjson.loads(text2)))
            else:
                seen[key][text1][text2] = int(number)
        out: dict[StateKey, EntityHistory] = {}
        for key in wanted:
            history = events.get(key)
            out[key] = EntityHistory(history, dict(seen.get(key, {}))) if history else EMPTY_HISTORY
        return out
