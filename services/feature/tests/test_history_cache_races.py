"""Concurrent read-through loads racing the store's own writes (issue 13, item 3), driven step by step.

A fake store whose loads block on an ``asyncio.Event`` each makes the interleavings deterministic: a
load snapshots the store's state when it starts (what a database read that began before a commit
sees), then waits until the test releases it. Two loads that finish in another order than they
started used to make the in-flight bookkeeping remove the wrong load (by value: two empty sets are
equal), so a later load raised ``ValueError: list.remove(x): x not in list`` or cached a history that
a write had already replaced.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from aimesh.feature.history import EntityHistory, HistoryEvent, StateKey
from aimesh.feature.online.cache import HistoryCache


def history(ts_us: int) -> EntityHistory:
    return EntityHistory([HistoryEvent("e", ts_us, {"amount": 1.0})])


class GatedStore:
    """A store of one history per key; each load reads the state at its start and waits for ``release``."""

    def __init__(self) -> None:
        self.state: dict[StateKey, EntityHistory] = {}
        self.gates: dict[StateKey, asyncio.Event] = {}
        self.started: dict[StateKey, asyncio.Event] = {}

    def gate(self, key: StateKey) -> None:
        self.gates[key] = asyncio.Event()
        self.started[key] = asyncio.Event()

    async def load(self, keys: set[StateKey]) -> dict[StateKey, EntityHistory]:
        snapshot = {key: self.state.get(key, history(0)) for key in keys}
        for key in keys:
            self.started[key].set()
        await asyncio.gather(*(self.gates[key].wait() for key in keys))
        return snapshot

    def write(self, cache: HistoryCache, key: StateKey, value: EntityHistory) -> None:
        """A committed write: new state, then the store invalidates the key (as the online stores do)."""
        self.state[key] = value
        cache.invalidate([key])


async def start_read(
    cache: HistoryCache, store: GatedStore, key: StateKey
) -> asyncio.Task[dict[StateKey, EntityHistory]]:
    store.gate(key)
    coro: Coroutine[Any, Any, dict[StateKey, EntityHistory]] = cache.read_through([key], store.load)
    task = asyncio.create_task(coro)
    await store.started[key].wait()
    return task


async def finish(store: GatedStore, key: StateKey, task: asyncio.Task[dict[StateKey, EntityHistory]]) -> None:
    store.gates[key].set()
    await task


async def test_loads_finishing_out_of_order_neither_fail_nor_cache_a_replaced_history() -> None:
    cache, store = HistoryCache(10), GatedStore()
    a, b = ("v", "a"), ("v", "b")
    store.state[a] = history(1)
    read_a = await start_read(cache, store, a)
    read_b = await start_read(cache, store, b)
    await finish(store, b, read_b)  # the later load ends first
    store.write(cache, a, history(2))  # a write to a commits while a's load holds the old state
    await finish(store, a, read_a)  # raised ValueError: list.remove(x): x not in list
    assert read_a.result()[a].last_event_us == 1, "the load answers what it read"
    assert cache.get(a) is None, "but must not cache it: a write replaced it during the load"
    assert (await cache.read_through([a], _immediate(store)))[a].last_event_us == 2


async def test_a_load_that_started_before_a_write_never_caches_the_old_history() -> None:
    cache, store = HistoryCache(10), GatedStore()
    k, x, y, z = ("v", "k"), ("v", "x"), ("v", "y"), ("v", "z")
    store.state[k] = history(1)
    read_k = await start_read(cache, store, k)
    read_x = await start_read(cache, store, x)
    read_y = await start_read(cache, store, y)
    await finish(store, x, read_x)
    store.write(cache, k, history(2))
    read_z = await start_read(cache, store, z)  # starts after the write
    await finish(store, k, read_k)  # by value, this used to drop z's bookkeeping and cache k's old history
    assert cache.get(k) is None, "a history replaced while it loaded was cached"
    await finish(store, y, read_y)
    await finish(store, z, read_z)
    assert cache.get(y) is not None and cache.get(z) is not None, "untouched keys are cached"
    assert (await cache.read_through([k], _immediate(store)))[k].last_event_us == 2


async def test_a_load_that_started_after_the_write_is_cached() -> None:
    cache, store = HistoryCache(10), GatedStore()
    a, b = ("v", "a"), ("v", "b")
    read_b = await start_read(cache, store, b)  # keeps a load in flight across the write
    store.write(cache, a, history(2))
    read_a = await start_read(cache, store, a)
    await finish(store, a, read_a)
    assert cache.get(a) is not None and cache.get(a).last_event_us == 2  # type: ignore[union-attr]
    await finish(store, b, read_b)
    assert cache.get(b) is not None


async def test_many_interleaved_loads_and_writes_leave_only_current_histories() -> None:
    """Random-order completion of 200 loads racing writes: every cached history is the store's current one."""
    rng = random.Random(13)
    cache, store = HistoryCache(1000), GatedStore()
    keys = [("v", f"e{i}") for i in range(20)]
    for i, key in enumerate(keys):
        store.state[key] = history(i)
    version = 100
    in_flight: list[tuple[StateKey, asyncio.Task[dict[StateKey, EntityHistory]], asyncio.Event]] = []
    for _ in range(200):
        step = rng.random()
        if step < 0.45 or not in_flight:
            key = rng.choice(keys)
            gate, started = asyncio.Event(), asyncio.Event()

            async def load(
                wanted: set[StateKey], gate: asyncio.Event = gate, started: asyncio.Event = started
            ) -> dict[StateKey, EntityHistory]:
                snapshot = {k: store.state[k] for k in wanted}
                started.set()
                await gate.wait()
                return snapshot

            task = asyncio.create_task(cache.read_through([key], load))
            await asyncio.sleep(0)
            in_flight.append((key, task, gate))
        elif step < 0.7:
            version += 1
            store.write(cache, rng.choice(keys), history(version))
        else:
            _, task, gate = in_flight.pop(rng.randrange(len(in_flight)))
            gate.set()
            await task
    for _, task, gate in in_flight:
        gate.set()
        await task
    for key in keys:
        cached = cache.get(key)
        assert cached is None or cached.last_event_us == store.state[key].last_event_us, key
    assert cache.loads_in_flight == 0
    assert not cache._invalidated, "no bookkeeping is left once no load runs"


def test_put_outside_its_loading_bracket_is_refused() -> None:
    cache = HistoryCache(10)
    with cache.loading() as load:
        pass
    with pytest.raises(ValueError, match="outside"):
        cache.put({("v", "a"): history(1)}, load)


def _immediate(store: GatedStore) -> Callable[[set[StateKey]], Awaitable[dict[StateKey, EntityHistory]]]:
    async def load(keys: set[StateKey]) -> dict[StateKey, EntityHistory]:
        return {key: store.state[key] for key in keys}

    return load
