"""A bounded in-process read cache of the online store's per-(view, entity) histories.

Correct only while this process is the one writer of its database: the online store invalidates the
keys a transaction touched once it has committed (or failed), and a load that was in flight while a
key was invalidated does not cache that key (it may have read the state from before the commit).
Writes by any other process (another replica on the same PostgreSQL database, ``aimesh feature
backfill``) are NOT seen: run such deployments with the cache off (``FEATURE_ONLINE_CACHE_ENTRIES=0``).

How a racing load is recognised: every ``invalidate`` call advances a generation counter and records,
for each key, the generation of its last invalidation; a load remembers the generation at which it
started, and ``put`` skips every key invalidated after that. Running loads are tracked by identity
(a ``Load`` object each), so loads that finish in any order never disturb one another, and the
per-key records are dropped as soon as no load that started before them is still running (the
bookkeeping stays as small as the set of keys written during the oldest running load).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager

from aimesh.feature.history import EntityHistory, StateKey


class Load:
    """One running database load (see ``HistoryCache.loading``); compared by identity, never by value."""

    __slots__ = ("started",)

    def __init__(self, started: int) -> None:
        self.started = started
        """The cache's generation when the load began: invalidations after it make its keys uncacheable."""


class HistoryCache:
    """LRU map of (view, entity) -> history, at most ``max_entries`` entries (0: caches nothing).

    Not thread-safe: one event loop (``read_through`` is safe against any interleaving of concurrent
    loads and ``invalidate`` calls on that loop).
    """

    def __init__(self, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[StateKey, EntityHistory] = OrderedDict()
        self._generation = 0
        self._loads: dict[Load, None] = {}
        """Running loads in start order (so the first one started earliest); hashed by identity."""
        self._invalidated: OrderedDict[StateKey, int] = OrderedDict()
        """Key -> generation of its last invalidation, oldest first; only while a load older than it runs."""

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def loads_in_flight(self) -> int:
        """How many ``loading`` brackets are open (0 when idle: nothing is left behind by finished loads)."""
        return len(self._loads)

    def get(self, key: StateKey) -> EntityHistory | None:
        """The cached history of ``key`` (marked most recently used), None on a miss."""
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    @contextmanager
    def loading(self) -> Iterator[Load]:
        """Bracket a database load: yields its ``Load``; call ``put(loaded, load)`` inside the bracket."""
        load = Load(self._generation)
        self._loads[load] = None
        try:
            yield load
        finally:
            del self._loads[load]
            self._forget_invalidations()

    def put(self, loaded: Mapping[StateKey, EntityHistory], load: Load) -> None:
        """Cache ``loaded`` except the keys invalidated since ``load`` started; evicts least recently used.

        Raises ``ValueError`` when ``load`` is not running (``put`` belongs inside its ``loading`` bracket:
        after it, the invalidations it must respect may already be forgotten).
        """
        if load not in self._loads:
            raise ValueError("HistoryCache.put outside the load's loading() bracket")
        if self.max_entries == 0:
            return
        for key, history in loaded.items():
            if self._invalidated.get(key, -1) > load.started:
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
        (bracketed by ``loading``), which are then cached unless invalidated meanwhile. Raises what
        ``load`` raises (nothing is cached)."""
        out: dict[StateKey, EntityHistory] = {}
        missing: set[StateKey] = set()
        for key in set(keys):
            found = self.get(key)
            if found is None:
                missing.add(key)
            else:
                out[key] = found
        if missing:
            with self.loading() as running:
                loaded = await load(missing)
                self.put(loaded, running)
            out.update(loaded)
        return out

    def invalidate(self, keys: Iterable[StateKey]) -> None:
        """Drop ``keys`` (call after a write touching them committed or failed); running loads will not cache them."""
        self._generation += 1
        for key in keys:
            self._entries.pop(key, None)
            if self._loads:
                self._invalidated[key] = self._generation
                self._invalidated.move_to_end(key)

    def _forget_invalidations(self) -> None:
        """Drop the records no running load needs: those not newer than the oldest running load's start."""
        oldest = next(iter(self._loads)).started if self._loads else self._generation
        while self._invalidated:
            key, generation = next(iter(self._invalidated.items()))
            if generation > oldest:
                return
            del self._invalidated[key]
