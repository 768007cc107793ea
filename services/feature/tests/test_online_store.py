"""The online store, one contract on SQLite (unit) and PostgreSQL (integration): exactly-once effect."""

from __future__ import annotations

from sqlalchemy import func, select

from aimesh.feature import schema
from aimesh.feature.aggregation import EMPTY_HISTORY
from aimesh.feature.store import OnlineStore

from .conftest import HOUR_US, T0, txn

DAY_US = 24 * HOUR_US


async def snapshot(store: OnlineStore) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    async with store.engine.connect() as conn:
        for table in (schema.events, schema.seen_values, schema.entity_last, schema.consumer_offsets):
            rows = (await conn.execute(select(table))).all()
            out[table.name] = sorted(tuple(r) for r in rows)
    return out


async def test_migrations_are_idempotent(store: OnlineStore) -> None:
    await store.migrate()
    assert await store.offsets() == {}


async def test_a_batch_is_applied_with_its_offset_and_a_redelivery_changes_nothing(store: OnlineStore) -> None:
    batch = [(10 + i, txn(f"e{i}", T0 + i * HOUR_US, amount=float(i + 1), country=f"C{i % 2}")) for i in range(5)]
    result = await store.apply("records", 0, batch)
    assert (result.applied, result.skipped) == (5, 0)
    assert await store.offsets() == {("records", 0): 15}
    before = await snapshot(store)

    again = await store.apply("records", 0, batch)
    assert (again.applied, again.skipped) == (0, 5)
    assert await snapshot(store) == before

    states = await store.load([("card", "c1"), ("customer", "u1"), ("card", "nobody")])
    card = states[("card", "c1")]
    assert sorted(e.event_id for e in card.recent) == [f"e{i}" for i in range(5)]
    assert card.last_event_us == T0 + 4 * HOUR_US
    assert set(card.seen["country"]) == {"C0", "C1"}  # type: ignore[call-overload]
    assert states[("customer", "u1")].last_event_us == T0 + 4 * HOUR_US
    assert states[("card", "nobody")] is EMPTY_HISTORY


async def test_a_partly_redelivered_batch_applies_only_the_new_offsets(store: OnlineStore) -> None:
    await store.apply("records", 1, [(0, txn("a", T0)), (1, txn("b", T0 + 1))])
    result = await store.apply("records", 1, [(1, txn("b", T0 + 1)), (2, txn("c", T0 + 2)), (3, None)])
    assert (result.applied, result.skipped) == (1, 1)
    assert await store.offsets() == {("records", 1): 4}
    states = await store.load([("card", "c1")])
    assert len(states[("card", "c1")].recent) == 3


async def test_the_same_event_under_a_new_offset_is_not_counted_twice(store: OnlineStore) -> None:
    await store.apply("records", 0, [(0, txn("dup", T0))])
    await store.apply("records", 0, [(1, txn("dup", T0))])
    states = await store.load([("card", "c1")])
    assert [e.event_id for e in states[("card", "c1")].recent] == ["dup"]


async def test_out_of_order_events_and_pruning_relative_to_the_newest(store: OnlineStore) -> None:
    await store.apply("records", 0, [(0, txn("new", T0 + 10 * DAY_US)), (1, txn("old", T0, country="FR"))])
    await store.apply("records", 0, [(2, txn("mid", T0 + 5 * DAY_US))])
    states = await store.load([("card", "c1")])
    card = states[("card", "c1")]
    assert sorted(e.event_id for e in card.recent) == ["mid", "new"]  # "old" is > 7 d before the newest
    assert card.last_event_us == T0 + 10 * DAY_US  # a late event never moves the newest time back
    assert "FR" in card.seen["country"]  # seen values are kept for all history
    async with store.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(schema.events))
    assert count == 4  # mid, new for the card and for the customer


async def test_an_empty_batch_writes_nothing(store: OnlineStore) -> None:
    result = await store.apply("records", 0, [])
    assert (result.applied, result.skipped) == (0, 0)
    assert await store.offsets() == {}
