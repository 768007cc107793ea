"""The online store, one contract on SQLite (unit) and PostgreSQL (integration): exactly-once effect,
lateness, pruning to each view's retention."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from aimesh.feature import schema
from aimesh.feature.aggregation import EMPTY_HISTORY
from aimesh.feature.service import FeatureStore
from aimesh.feature.store import OnlineStore

from .conftest import DAY_US, HOUR_US, T0, apply, txn

CARD, CUSTOMER = "card_txn_stats", "customer_txn_stats"


async def snapshot(store: OnlineStore) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    async with store.engine.connect() as conn:
        for table in (schema.view_events, schema.view_seen, schema.consumer_offsets):
            rows = (await conn.execute(select(table))).all()
            out[table.name] = sorted(tuple(r) for r in rows)
    return out


async def test_migrations_are_idempotent(store: OnlineStore) -> None:
    await store.migrate()
    assert await store.offsets() == {}


async def test_a_batch_is_applied_with_its_offset_and_a_redelivery_changes_nothing(features: FeatureStore) -> None:
    store = features.store
    batch = [(10 + i, txn(f"e{i}", T0 + i * HOUR_US, amount=float(i + 1), country=f"C{i % 2}")) for i in range(5)]
    result = await apply(features, 0, batch)
    assert (result.applied, result.skipped) == (5, 0)
    assert await store.offsets() == {("records", 0): 15}
    before = await snapshot(store)

    again = await apply(features, 0, batch)
    assert (again.applied, again.skipped) == (0, 5)
    assert await snapshot(store) == before

    states = await store.load([(CARD, "c1"), (CUSTOMER, "u1"), (CARD, "nobody")])
    card = states[(CARD, "c1")]
    assert sorted(e.event_id for e in card.events) == [f"e{i}" for i in range(5)]
    assert card.events[0].values == {"amount": 1.0, "merchant_id": "m1"}
    assert card.last_event_us == T0 + 4 * HOUR_US
    assert card.first_seen["country"] == {"C0": T0, "C1": T0 + HOUR_US}
    assert states[(CUSTOMER, "u1")].last_event_us == T0 + 4 * HOUR_US
    assert states[(CARD, "nobody")] is EMPTY_HISTORY


async def test_a_partly_redelivered_batch_applies_only_the_new_offsets(features: FeatureStore) -> None:
    await apply(features, 1, [(0, txn("a", T0)), (1, txn("b", T0 + 1))])
    result = await apply(features, 1, [(1, txn("b", T0 + 1)), (2, txn("c", T0 + 2)), (3, None)])
    assert (result.applied, result.skipped) == (1, 1)
    assert await features.store.offsets() == {("records", 1): 4}
    states = await features.store.load([(CARD, "c1")])
    assert len(states[(CARD, "c1")].events) == 3


async def test_the_same_event_under_a_new_offset_is_not_counted_twice(features: FeatureStore) -> None:
    await apply(features, 0, [(0, txn("dup", T0))])
    await apply(features, 0, [(1, txn("dup", T0))])
    states = await features.store.load([(CARD, "c1")])
    assert [e.event_id for e in states[(CARD, "c1")].events] == ["dup"]


async def test_out_of_order_events_and_pruning_relative_to_the_newest(features: FeatureStore) -> None:
    store = features.store
    await apply(features, 0, [(0, txn("new", T0 + 10 * DAY_US)), (1, txn("old", T0, country="FR"))])
    await apply(features, 0, [(2, txn("mid", T0 + 5 * DAY_US))])
    states = await store.load([(CARD, "c1")])
    card = states[(CARD, "c1")]
    assert sorted(e.event_id for e in card.events) == ["mid", "new"]  # "old" is > 7 d before the newest
    assert card.last_event_us == T0 + 10 * DAY_US  # a late event never moves the newest time back
    assert card.first_seen["country"]["FR"] == T0  # first-seen times are kept for all history
    async with store.engine.connect() as conn:
        count = await conn.scalar(select(func.count()).select_from(schema.view_events))
    assert count == 4  # mid, new for the card and for the customer


async def test_events_later_than_the_allowed_lateness_are_counted_and_skipped(features: FeatureStore) -> None:
    strict = OnlineStore(features.engine, allowed_lateness=timedelta(hours=1))
    features.store = strict
    await apply(features, 0, [(0, txn("new", T0 + DAY_US))])
    result = await apply(features, 0, [(1, txn("late", T0, country="FR")), (2, txn("ok", T0 + DAY_US - HOUR_US))])
    assert (result.applied, result.late) == (2, 2)  # "late" skipped for the card view and the customer view
    card = (await strict.load([(CARD, "c1")]))[(CARD, "c1")]
    assert sorted(e.event_id for e in card.events) == ["new", "ok"]
    assert "FR" not in card.first_seen["country"]


async def test_an_empty_batch_writes_nothing(features: FeatureStore) -> None:
    result = await apply(features, 0, [])
    assert (result.applied, result.skipped) == (0, 0)
    assert await features.store.offsets() == {}
