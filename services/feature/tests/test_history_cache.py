"""The online store's read cache: LRU bound, invalidation by the store's own writes, no stale entry
from a load that raced a write, and that it is (documented as) blind to other writers; the store tests
run on every backend (SQLite, PostgreSQL, Redis)."""

from __future__ import annotations

import pytest

from aimesh.feature.history import EMPTY_HISTORY, EntityHistory, HistoryEvent, StateKey
from aimesh.feature.online.cache import HistoryCache

from .conftest import HOUR_US, T0, txn
from .online_backends import OnlineBackend

CARD = "card_txn_stats"


def history(ts_us: int) -> EntityHistory:
    return EntityHistory([HistoryEvent("e", ts_us, {"amount": 1.0})])


def test_the_least_recently_used_entry_is_evicted_first() -> None:
    cache = HistoryCache(2)
    with cache.loading() as invalidated:
        cache.put({("v", "a"): history(1), ("v", "b"): history(2)}, invalidated)
    assert cache.get(("v", "a")) is not None  # a is now more recent than b
    with cache.loading() as invalidated:
        cache.put({("v", "c"): history(3)}, invalidated)
    assert len(cache) == 2
    assert cache.get(("v", "b")) is None
    assert cache.get(("v", "a")) is not None and cache.get(("v", "c")) is not None


def test_a_key_invalidated_while_it_loads_is_not_cached() -> None:
    cache = HistoryCache(10)
    with cache.loading() as invalidated:
        cache.invalidate([("v", "a")])  # a write committed while the load read the old state
        cache.put({("v", "a"): history(1), ("v", "b"): history(2)}, invalidated)
    assert cache.get(("v", "a")) is None
    assert cache.get(("v", "b")) is not None


def test_size_zero_caches_nothing_and_negative_sizes_are_refused() -> None:
    cache = HistoryCache(0)
    with cache.loading() as invalidated:
        cache.put({("v", "a"): history(1)}, invalidated)
    assert len(cache) == 0
    with pytest.raises(ValueError, match="max_entries"):
        HistoryCache(-1)


async def test_a_read_after_a_write_sees_the_write(online: OnlineBackend) -> None:
    store = online.store
    assert (await store.load([(CARD, "c1")]))[(CARD, "c1")] is EMPTY_HISTORY
    assert len(store.cache) == 1  # the empty answer is cached too
    await online.apply(0, [(0, txn("a", T0))])
    assert [e.event_id for e in (await store.load([(CARD, "c1")]))[(CARD, "c1")].events] == ["a"]
    await online.apply(0, [(1, txn("b", T0 + HOUR_US))])
    card = (await store.load([(CARD, "c1")]))[(CARD, "c1")]
    assert [e.event_id for e in card.events] == ["a", "b"]
    assert card.last_event_us == T0 + HOUR_US


async def test_hits_skip_the_store_and_a_zero_size_cache_reads_it_every_time(online: OnlineBackend) -> None:
    await online.apply(0, [(0, txn("a", T0))])
    cached, uncached = online.store, online.make(cache_entries=0)
    assert (await cached.load([(CARD, "c1")]))[(CARD, "c1")].last_event_us == T0
    await online.erase_events()  # another writer: invisible to the cache (documented)
    assert (await cached.load([(CARD, "c1")]))[(CARD, "c1")].last_event_us == T0
    assert (await uncached.load([(CARD, "c1")]))[(CARD, "c1")] is EMPTY_HISTORY
    assert len(uncached.cache) == 0


async def test_read_through_loads_only_the_misses_in_one_call() -> None:
    cache = HistoryCache(10)
    calls: list[set[StateKey]] = []

    async def load(keys: set[StateKey]) -> dict[StateKey, EntityHistory]:
        calls.append(keys)
        return {key: history(1) for key in keys}

    first = await cache.read_through([("v", "a"), ("v", "b"), ("v", "a")], load)
    second = await cache.read_through([("v", "a"), ("v", "c")], load)
    assert calls == [{("v", "a"), ("v", "b")}, {("v", "c")}]
    assert second[("v", "a")] is first[("v", "a")]
    assert sorted(second) == [("v", "a"), ("v", "c")]
