"""The online store, one contract on SQLite (unit), PostgreSQL and Redis (integration): exactly-once effect,
idempotent effects, lateness, pruning to each view's retention, backfill overwrites."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from aimesh.feature.history import EMPTY_HISTORY
from aimesh.feature.online.factory import open_online_store

from .conftest import DAY_US, HOUR_US, T0, project, txn
from .online_backends import OnlineBackend

CARD, CUSTOMER = "card_txn_stats", "customer_txn_stats"


async def test_migrations_are_idempotent(online: OnlineBackend) -> None:
    await online.store.migrate()
    await online.make().migrate()
    assert await online.store.offsets() == {}
    assert await online.store.next_offset("records", 0) == 0


async def test_a_batch_is_applied_with_its_offset_and_a_redelivery_changes_nothing(online: OnlineBackend) -> None:
    store = online.store
    batch = [(10 + i, txn(f"e{i}", T0 + i * HOUR_US, amount=float(i + 1), country=f"C{i % 2}")) for i in range(5)]
    result = await online.apply(0, batch)
    assert (result.applied, result.skipped) == (5, 0)
    assert await store.offsets() == {("records", 0): 15}
    assert await store.next_offset("records", 0) == 15
    before = await online.dump()

    again = await online.apply(0, batch)
    assert (again.applied, again.skipped) == (0, 5)
    assert await online.dump() == before

    states = await store.load([(CARD, "c1"), (CUSTOMER, "u1"), (CARD, "nobody")])
    card = states[(CARD, "c1")]
    assert [e.event_id for e in card.events] == [f"e{i}" for i in range(5)]
    assert card.events[0].values == {"amount": 1.0, "merchant_id": "m1"}
    assert card.last_event_us == T0 + 4 * HOUR_US
    assert card.first_seen["country"] == {"C0": T0, "C1": T0 + HOUR_US}
    assert states[(CUSTOMER, "u1")].last_event_us == T0 + 4 * HOUR_US
    assert states[(CARD, "nobody")] is EMPTY_HISTORY


async def test_offsets_are_kept_per_topic_and_partition(online: OnlineBackend) -> None:
    await online.apply(0, [(3, txn("a", T0))], topic="records.v1")
    await online.apply(2, [(7, txn("b", T0))], topic="records.v1")
    await online.apply(0, [(1, None)], topic="other")
    assert await online.store.offsets() == {("records.v1", 0): 4, ("records.v1", 2): 8, ("other", 0): 2}
    assert await online.make().next_offset("records.v1", 2) == 8  # stored, not held by the store object


async def test_a_partly_redelivered_batch_applies_only_the_new_offsets(online: OnlineBackend) -> None:
    await online.apply(1, [(0, txn("a", T0)), (1, txn("b", T0 + 1))])
    result = await online.apply(1, [(1, txn("b", T0 + 1)), (2, txn("c", T0 + 2)), (3, None)])
    assert (result.applied, result.skipped) == (1, 1)
    assert await online.store.offsets() == {("records", 1): 4}
    states = await online.store.load([(CARD, "c1")])
    assert len(states[(CARD, "c1")].events) == 3


async def test_the_same_event_under_a_new_offset_is_not_counted_twice(online: OnlineBackend) -> None:
    await online.apply(0, [(0, txn("dup", T0))])
    await online.apply(0, [(1, txn("dup", T0, amount=99.0))])  # a stream duplicate never overwrites
    states = await online.store.load([(CARD, "c1")])
    assert [(e.event_id, e.values["amount"]) for e in states[(CARD, "c1")].events] == [("dup", 10.0)]


async def test_out_of_order_events_and_pruning_relative_to_the_newest(online: OnlineBackend) -> None:
    store = online.store
    await online.apply(0, [(0, txn("new", T0 + 10 * DAY_US)), (1, txn("old", T0, country="FR"))])
    await online.apply(0, [(2, txn("mid", T0 + 5 * DAY_US))])
    states = await store.load([(CARD, "c1")])
    card = states[(CARD, "c1")]
    assert [e.event_id for e in card.events] == ["mid", "new"]  # "old" is > 7 d before the newest
    assert card.last_event_us == T0 + 10 * DAY_US  # a late event never moves the newest time back
    assert card.first_seen["country"]["FR"] == T0  # first-seen times are kept for all history
    assert await online.stored_events() == 4  # mid, new for the card and for the customer


async def test_an_event_exactly_one_retention_before_the_newest_is_pruned(online: OnlineBackend) -> None:
    retention = online.registry.view(CARD).retention_us
    await online.apply(0, [(0, txn("edge", T0)), (1, txn("inside", T0 + 1)), (2, txn("new", T0 + retention))])
    card = (await online.store.load([(CARD, "c1")]))[(CARD, "c1")]
    assert [e.event_id for e in card.events] == ["inside", "new"]


async def test_first_seen_times_are_a_minimum(online: OnlineBackend) -> None:
    await online.apply(0, [(0, txn("b", T0 + HOUR_US, country="FR")), (1, txn("a", T0, country="FR"))])
    await online.apply(0, [(2, txn("c", T0 + 2 * HOUR_US, country="FR"))])
    card = (await online.store.load([(CARD, "c1")]))[(CARD, "c1")]
    assert card.first_seen["country"] == {"FR": T0}


async def test_events_later_than_the_allowed_lateness_are_counted_and_skipped(online: OnlineBackend) -> None:
    online.store = strict = online.make(allowed_lateness=timedelta(hours=1))
    await online.apply(0, [(0, txn("new", T0 + DAY_US))])
    result = await online.apply(0, [(1, txn("late", T0, country="FR")), (2, txn("ok", T0 + DAY_US - HOUR_US))])
    assert (result.applied, result.late) == (2, 2)  # "late" skipped for the card view and the customer view
    card = (await strict.load([(CARD, "c1")]))[(CARD, "c1")]
    assert [e.event_id for e in card.events] == ["ok", "new"]
    assert "FR" not in card.first_seen["country"]


async def test_lateness_counts_from_the_newest_event_of_the_same_batch(online: OnlineBackend) -> None:
    online.store = online.make(allowed_lateness=timedelta(hours=1))
    result = await online.apply(0, [(0, txn("new", T0 + DAY_US)), (1, txn("late", T0))])
    assert result.late == 2
    assert [e.event_id for e in (await online.store.load([(CARD, "c1")]))[(CARD, "c1")].events] == ["new"]


async def test_a_backfill_overwrites_payloads_ignores_lateness_and_leaves_offsets(online: OnlineBackend) -> None:
    online.store = store = online.make(allowed_lateness=timedelta(hours=1))
    await online.apply(0, [(0, txn("a", T0 + DAY_US, amount=1.0)), (1, txn("b", T0 + DAY_US + 1))])
    retention = {v.name: v.retention_us for v in online.registry.views.values()}
    backfilled = [txn("a", T0 + DAY_US, amount=5.0, country="FR"), txn("old", T0, country="IT")]
    await store.write_backfill([ve for r in backfilled for ve in project(online.registry, r)], retention)
    card = (await store.load([(CARD, "c1")]))[(CARD, "c1")]
    assert [(e.event_id, e.values["amount"]) for e in card.events] == [("old", 10.0), ("a", 5.0), ("b", 10.0)]
    assert card.first_seen["country"] == {"DE": T0 + DAY_US, "FR": T0 + DAY_US, "IT": T0}
    assert await store.offsets() == {("records", 0): 2}
    before = await online.dump()
    await store.write_backfill([ve for r in backfilled for ve in project(online.registry, r)], retention)
    assert await online.dump() == before  # idempotent


async def test_an_empty_batch_writes_nothing(online: OnlineBackend) -> None:
    result = await online.apply(0, [])
    assert (result.applied, result.skipped) == (0, 0)
    assert await online.store.offsets() == {}
    await online.store.write_backfill([], {})
    assert await online.stored_events() == 0


async def test_the_factory_picks_the_store_by_url(sql_engine: AsyncEngine) -> None:
    sql = open_online_store("", sql_engine, cache_entries=3)
    assert sql.kind == "sql" and sql.cache.max_entries == 3
    await sql.migrate()
    await sql.ping()
    await sql.aclose()  # the engine is the caller's: still usable
    assert await sql.offsets() == {}
    redis = open_online_store("redis://127.0.0.1:1/0", sql_engine)  # connects lazily: nothing is sent here
    assert redis.kind == "redis"
    await redis.aclose()
    with pytest.raises(ValueError, match="use a redis://"):
        open_online_store("postgresql://x", sql_engine)
