"""Upstream duplicates: where each accepted event id was *first* accepted, to drop later copies.

An event id's first position (topic, partition, offset of the upstream record) is claimed once and
never changes, so every copy of that knowledge (a replica's cache, the durable store) agrees with
every other. A record is a duplicate only when its id's first position is a *different* one: a
redelivery of the same record (after a failed batch or a crash before the offsets were committed)
is processed again, so its effects are rewritten rather than lost.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Protocol

Position = tuple[str, int, int]
"""(topic, partition, offset) of the upstream record."""


class SeenStore(Protocol):
    """The durable record of accepted event ids, shared by every replica (``aimesh.ingest.seen_store``)."""

    async def claim(self, source: str, positions: Mapping[str, Position]) -> dict[str, Position]:
        """Record ``positions`` (event id -> position) for ids of ``source`` not recorded yet.

        Returns the first recorded position of every given id (its own when this call recorded it).
        Durable when it returns; raises when the store cannot be reached (nothing may be accepted then).
        """
        ...


class SeenEvents:
    """First positions of event ids: a bounded cache (least recently used evicted) in front of ``store``.

    Without a store the cache is all there is: duplicates are dropped only while their id is cached,
    and not across restarts.
    """

    def __init__(self, capacity: int, store: SeenStore | None = None) -> None:
        self._capacity = capacity
        self._store = store
        self._positions: OrderedDict[tuple[str, str], Position] = OrderedDict()

    def __len__(self) -> int:
        return len(self._positions)

    async def first_positions(self, source: str, candidates: Mapping[str, Position]) -> dict[str, Position]:
        """Claim ``candidates`` (event id -> position of its first copy in hand) for ``source``.

        Returns each id's first accepted position: the candidate's own when it is new or a redelivery,
        an earlier one when the candidate is a duplicate. Ids not cached are claimed in the store,
        which is durable when this returns; raises what the store raises.
        """
        first: dict[str, Position] = {}
        missing: dict[str, Position] = {}
        for event_id, position in candidates.items():
            cached = self._positions.get((source, event_id))
            if cached is None:
                missing[event_id] = position
            else:
                self._positions.move_to_end((source, event_id))
                first[event_id] = cached
        claimed = await self._store.claim(source, missing) if self._store is not None and missing else missing
        for event_id, position in claimed.items():
            self._remember(source, event_id, position)
            first[event_id] = position
        return first

    def _remember(self, source: str, event_id: str, position: Position) -> None:
        if self._capacity == 0:
            return
        self._positions[(source, event_id)] = position
        while len(self._positions) > self._capacity:
            self._positions.popitem(last=False)
