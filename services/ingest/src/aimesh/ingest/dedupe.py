"""Recently accepted event ids, to drop upstream duplicates (bounded, least recently seen evicted first)."""

from __future__ import annotations

from collections import OrderedDict

Position = tuple[str, int, int]
"""(topic, partition, offset) of the upstream record."""


class SeenEvents:
    """Event id -> the upstream position where it was first accepted, for at most ``capacity`` ids.

    A record is a duplicate only when its id was accepted at a *different* position: a redelivery of
    the same record (after a failed batch or an uncommitted offset) is processed again, so its effects
    (lake file, canonical record) are rewritten rather than lost. Not shared between instances and
    empty after a restart: downstream consumers still dedupe on the event id.
    """

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._positions: OrderedDict[str, Position] = OrderedDict()

    def __len__(self) -> int:
        return len(self._positions)

    def is_duplicate(self, event_id: str, position: Position) -> bool:
        first = self._positions.get(event_id)
        return first is not None and first != position

    def remember(self, event_id: str, position: Position) -> None:
        """Record an accepted id (call it once the record's effects are durable)."""
        if self._capacity == 0:
            return
        self._positions.setdefault(event_id, position)
        self._positions.move_to_end(event_id)
        while len(self._positions) > self._capacity:
            self._positions.popitem(last=False)
