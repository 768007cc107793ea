"""A bounded in-process read cache of the online store's per-(view, entity) histories.

Correct only while this process is the one writer of its database: the online store invalidates the
keys a transaction touched once it has committed (or failed), and a load that was in flight while a
key was invalidated does not cache that key (it may have read the state from before the commit).
Writes by any other process (another replica on the same PostgreSQL database, ``aimesh feature
backfill``) are NOT seen: run such deployments with the cache off (``FEATURE_ONLINE_CACHE_ENTRIES=0``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

from aimesh.feature.history import EntityHistory, StateKey


class HistoryCache:
    """LRU map of (view, entity) -> history, at most ``max_entries`` entries (0: caches nothing)."""

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[StateKey, EntityHistory] = OrderedDict()
        self._loads: list[set[StateKey]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: StateKey) -> EntityHistory | None:
        """The cached history of ``key`` (marked most recently used), None on a miss."""
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    @contextmanager
    def loading(self) -> Iterator[set[StateKey]]:
        """Bracket a database load: yields the set of keys invalidated while it runs (pass it to ``put``)."""
        invalidated: set[StateKey] = set()
        self._loads.append(invalidated)
        try:
            yield invalidated
        finally:
            self._loads.remove(invalidated)

    def put(self, loaded: Mapping[StateKey, EntityHistory], invalidated: set[StateKey]) -> None:
        """Cache ``loaded`` except the keys invalidated during the load; evicts least recently used."""
        if self.max_entries == 0:
            return
        for key, history in loaded.items():
            if key in invalidated:
                continue
            self._entries[key] = history
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    async def read_through(
        self,
        keys: Iterable[StateKey],
        load: Callable[[set[StateKey]], Awaitable[Mapping[StateKey, EntityHistory]]],
    ) -> dict[StateKey, EntityHistory]:
        """The history of each of ``keys``: hits from here, the misses from ONE ``load(misses)`` call
        (bracketed by ``loading``), which are then cached. Raises what ``load`` raises (nothing is cached)."""
        out: dict[StateKey, EntityHistory] = {}
        missing: set[StateKey] = set()
        for key in set(keys):
            found = self.get(key)
            if found is None:
                missing.add(key)
            else:
                out[key] = found
        if missing:
            with self.loading() as invalidated:
                loaded = await load(missing)
            self.put(loaded, invalidated)
            out.update(loaded)
        return out

    def invalidate(self, keys: Iterable[StateKey]) -> None:
        """Drop ``keys`` (call after a write touching them committed or failed) and mark them for running loads."""
        for key in keys:
            self._entries.pop(key, None)
            for invalidated in self._loads:
                invalidated.add(key)
