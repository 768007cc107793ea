"""The online store: per-entity recent history in SQL, updated with exactly-once effect.

``apply`` writes a partition batch's effects and that partition's next offset in ONE transaction;
records below the stored offset are skipped, so a redelivery or a crash between the database commit
and the Kafka commit never counts a transaction twice. The effects are themselves idempotent
(events keyed by event id, seen values as a set, the newest event time as a max), so even a duplicate
of an event under a new offset, or two consumers racing on one customer, leave the same state.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Double,
    String,
    Table,
    and_,
    cast,
    delete,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from aimesh.core.sql import insert_ignoring_duplicates, migrate
from aimesh.feature import schema
from aimesh.feature.aggregation import EMPTY_HISTORY, EntityHistory, HistoryEvent, micros
from aimesh.feature.definitions import CARD, CUSTOMER, LONGEST_WINDOW
from aimesh.feature.records import Transaction

MIGRATIONS = Path(__file__).with_name("migrations")
SEEN_FIELDS = ("country", "device_id")
"""Transaction fields whose every value is remembered (the IS_NEW features' source fields)."""

EntityRef = tuple[str, str]
"""(entity type, entity id)."""


@dataclass(frozen=True)
class ApplyResult:
    """What ``apply`` did: transactions applied, records skipped as already applied (redelivered)."""

    applied: int
    skipped: int


def _entity_rows(txn: Transaction) -> Iterable[EntityRef]:
    yield (CARD, txn.card_id)
    yield (CUSTOMER, txn.customer_id)


async def _upsert_max(
    conn: AsyncConnection, table: Table, keys: Sequence[str], column: str, rows: list[dict[str, Any]]
) -> None:
    """Insert ``rows``; where the key exists, keep the larger ``column`` value (never goes backwards)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(table).values(rows)
        await conn.execute(
            pg.on_conflict_do_update(
                index_elements=keys, set_={column: func.greatest(table.c[column], pg.excluded[column])}
            )
        )
        return
    lite = sqlite.insert(table).values(rows)
    await conn.execute(
        lite.on_conflict_do_update(index_elements=keys, set_={column: func.max(table.c[column], lite.excluded[column])})
    )


def _entities_filter(table: Table, entities: Iterable[EntityRef]) -> ColumnElement[bool]:
    by_type: dict[str, set[str]] = defaultdict(set)
    for entity_type, entity_id in entities:
        by_type[entity_type].add(entity_id)
    return or_(
        *(
            and_(table.c.entity_type == entity_type, table.c.entity_id.in_(sorted(ids)))
            for entity_type, ids in sorted(by_type.items())
        )
    )


class OnlineStore:
    """The online store over an async SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def migrate(self) -> None:
        """Create or upgrade the tables (idempotent; run at start)."""
        await migrate(self.engine, MIGRATIONS)

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

    async def apply(self, topic: str, partition: int, records: Sequence[tuple[int, Transaction | None]]) -> ApplyResult:
        """Apply one partition batch: ``(offset, transaction)`` pairs in offset order, None for records
        without effect (other sources). Commits the effects and the next offset together.

        Records at offsets below the stored next offset are skipped. History older than the longest
        window before each touched entity's newest event is pruned. Raises SQLAlchemy errors when the
        database fails (nothing is then written).
        """
        if not records:
            return ApplyResult(0, 0)
        async with self.engine.begin() as conn:
            stored = await self._next_offset(conn, topic, partition)
            fresh = [txn for offset, txn in records if offset >= stored and txn is not None]
            skipped = sum(1 for offset, _ in records if offset < stored)
            await self._write_effects(conn, fresh)
            await _upsert_max(
                conn,
                schema.consumer_offsets,
                ["topic", "partition"],
                "next_offset",
                [{"topic": topic, "partition": partition, "next_offset": records[-1][0] + 1}],
            )
        return ApplyResult(len(fresh), skipped)

    @staticmethod
    async def _write_effects(conn: AsyncConnection, txns: Sequence[Transaction]) -> None:
        if not txns:
            return
        events: dict[tuple[str, str, str], dict[str, Any]] = {}
        seen: set[tuple[str, str, str, str]] = set()
        last: dict[EntityRef, int] = {}
        for txn in txns:
            for entity_type, entity_id in _entity_rows(txn):
                events[(entity_type, entity_id, txn.event_id)] = {
                    "entity_type": entity_type,
                    "entity_id": entity_id,
                    "event_id": txn.event_id,
                    "ts_us": txn.ts_us,
                    "amount": txn.amount,
                    "merchant_id": txn.merchant_id,
                }
                seen.update((entity_type, entity_id, name, getattr(txn, name)) for name in SEEN_FIELDS)
                key = (entity_type, entity_id)
                last[key] = max(last.get(key, txn.ts_us), txn.ts_us)
        await insert_ignoring_duplicates(conn, schema.events, list(events.values()))
        await insert_ignoring_duplicates(
            conn,
            schema.seen_values,
            [{"entity_type": a, "entity_id": b, "field": f, "value": v} for a, b, f, v in sorted(seen)],
        )
        await _upsert_max(
            conn,
            schema.entity_last,
            ["entity_type", "entity_id"],
            "last_event_us",
            [{"entity_type": a, "entity_id": b, "last_event_us": t} for (a, b), t in sorted(last.items())],
        )
        ev, lt = schema.events, schema.entity_last
        newest = (
            select(lt.c.last_event_us)
            .where(lt.c.entity_type == ev.c.entity_type, lt.c.entity_id == ev.c.entity_id)
            .scalar_subquery()
        )
        await conn.execute(delete(ev).where(_entities_filter(ev, last), ev.c.ts_us <= newest - micros(LONGEST_WINDOW)))

    async def load(self, entities: Iterable[EntityRef]) -> dict[EntityRef, EntityHistory]:
        """The current history of each entity, in one statement (one database round trip).

        Entities without any event get ``EMPTY_HISTORY``.
        """
        wanted = sorted(set(entities))
        if not wanted:
            return {}
        ev, sv, lt = schema.events, schema.seen_values, schema.entity_last
        no_text, no_int, no_amount = cast(null(), String), cast(null(), BigInteger), cast(null(), Double)
        statement = union_all(
            select(
                literal("e").label("kind"),
                ev.c.entity_type,
                ev.c.entity_id,
                ev.c.event_id.label("text1"),
                ev.c.merchant_id.label("text2"),
                ev.c.ts_us.label("number"),
                ev.c.amount,
            ).where(_entities_filter(ev, wanted)),
            select(literal("s"), sv.c.entity_type, sv.c.entity_id, sv.c.field, sv.c.value, no_int, no_amount).where(
                _entities_filter(sv, wanted)
            ),
            select(
                literal("l"), lt.c.entity_type, lt.c.entity_id, no_text, no_text, lt.c.last_event_us, no_amount
            ).where(_entities_filter(lt, wanted)),
        )
        async with self.engine.connect() as conn:
            rows = (await conn.execute(statement)).all()
        recent: dict[EntityRef, list[HistoryEvent]] = defaultdict(list)
        seen: dict[EntityRef, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        last: dict[EntityRef, int] = {}
        for kind, entity_type, entity_id, text1, text2, number, amount in rows:
            key = (entity_type, entity_id)
            if kind == "e":
                recent[key].append(HistoryEvent(text1, int(number), float(amount), text2))
            elif kind == "s":
                seen[key][text1].add(text2)
            else:
                last[key] = int(number)
        return {
            key: EntityHistory(recent.get(key, []), dict(seen.get(key, {})), last[key])
            if key in last
            else EMPTY_HISTORY
            for key in wanted
        }
