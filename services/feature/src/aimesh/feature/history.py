"""Entity histories: the events of one entity that one feature view keeps, as every part of the
feature service sees them.

The online stores load them (``online``), offline retrieval and the backfill build them from the lake
(``offline``), serving cuts them at a lookup time and computes features over the cut (``serving``).
Both paths cut with ``EntityHistory.before``, so for a lookup after the newest event they see the same
events.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta

Scalar = float | int | str | bool
"""A feature or attribute value."""
StateKey = tuple[str, str]
"""(feature view, entity id): whose history."""


def micros(delta: timedelta) -> int:
    """``delta`` in whole microseconds (the time unit of every event time here)."""
    return delta // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One event of an entity as a view keeps it: the fields its aggregations read."""

    event_id: str
    ts_us: int
    values: Mapping[str, Scalar]


class EntityHistory:
    """One entity's history in one view: its events ordered by (event time, event id), one per event id.

    ``first_seen``: per ``is_new`` field, each value's first event time. Immutable once built; the
    per-field columns are derived lazily and kept with it.
    """

    __slots__ = ("_columns", "_numbers", "_texts", "events", "first_seen", "times")

    def __init__(
        self, events: Iterable[HistoryEvent] = (), first_seen: Mapping[str, Mapping[str, int]] | None = None
    ) -> None:
        unique = {e.event_id: e for e in events}
        self.events: list[HistoryEvent] = sorted(unique.values(), key=lambda e: (e.ts_us, e.event_id))
        self.times: list[int] = [e.ts_us for e in self.events]
        self.first_seen: Mapping[str, Mapping[str, int]] = first_seen or {}
        self._columns: dict[str, list[Scalar | None]] = {}
        self._numbers: dict[str, tuple[list[float | None], bool]] = {}
        self._texts: dict[str, list[str | None]] = {}

    @property
    def last_event_us(self) -> int | None:
        """The newest event time (None: no events)."""
        return self.times[-1] if self.times else None

    def before(self, at_us: int, retention_us: int) -> HistoryCut:
        """What a lookup at ``at_us`` sees: events strictly before it and after its newest such event
        minus the view's retention (``first_seen`` is kept whole: lookups compare times).

        Online and offline both cut with this, so for any ``at_us`` after the newest event they see
        the same events. For an earlier ``at_us`` the online store may lack events it pruned already.
        """
        end = bisect.bisect_left(self.times, at_us)
        if end == 0:
            return HistoryCut(self, 0, 0)
        return HistoryCut(self, bisect.bisect_right(self.times, self.times[end - 1] - retention_us, 0, end), end)

    def column(self, name: str) -> list[Scalar | None]:
        """Field ``name`` of every event, in event order (None where an event lacks it)."""
        found = self._columns.get(name)
        if found is None:
            found = self._columns[name] = [e.values.get(name) for e in self.events]
        return found

    def numbers(self, name: str) -> tuple[list[float | None], bool]:
        """Field ``name`` as floats where it is a number (None elsewhere), and whether all of it is."""
        found = self._numbers.get(name)
        if found is None:
            values = [float(v) if isinstance(v, int | float) else None for v in self.column(name)]
            found = self._numbers[name] = (values, None not in values)
        return found

    def texts(self, name: str) -> list[str | None]:
        """Field ``name`` as text (a string as itself, any other value as ``str(value)``; None where unset)."""
        found = self._texts.get(name)
        if found is None:
            found = self._texts[name] = [v if v is None or isinstance(v, str) else str(v) for v in self.column(name)]
        return found


EMPTY_HISTORY = EntityHistory()


@dataclass(frozen=True, slots=True)
class HistoryCut:
    """Events ``history.events[start:end]``: a history as seen at one lookup time."""

    history: EntityHistory
    start: int
    end: int

    @property
    def last_event_us(self) -> int | None:
        """The newest event time in the cut (None: no events)."""
        return self.history.times[self.end - 1] if self.end > self.start else None

    @property
    def events(self) -> list[HistoryEvent]:
        return self.history.events[self.start : self.end]

    def window_start(self, at_us: int, window_us: int | None) -> int:
        """Index of the first event in the open window ``(at_us - window_us, at_us)`` (the cut's start
        when ``window_us`` is None: the whole retained history)."""
        if window_us is None:
            return self.start
        return bisect.bisect_right(self.history.times, at_us - window_us, self.start, self.end)
