"""The one function that computes feature values, used by online serving and offline retrieval alike.

``compute_features`` is pure: given, per feature view, the entity's retained history strictly before
the lookup time ``t`` (``EntityHistory.before``), the request context and ``t``, it returns values,
event times and statuses (TTL included). The online store builds the histories from its tables,
offline retrieval from the lake; both cut them with ``EntityHistory.before``, so they agree by
construction. Sums use ``math.fsum`` (exactly rounded) and ties are broken by event id, so the order
events arrive in never changes a value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import IntEnum

from aimesh.api.feature.v1 import feature_pb2
from aimesh.core.errors import InvalidArgument
from aimesh.feature.definitions import Aggregation
from aimesh.feature.expressions import ExpressionError
from aimesh.feature.registry import Registry, ResolvedFeature

Scalar = float | int | str | bool
RequestContext = Mapping[str, Scalar]


def micros(delta: timedelta) -> int:
    """``delta`` in whole microseconds (the time unit of every event time here)."""
    return delta // timedelta(microseconds=1)


class Status(IntEnum):
    """A value's status; the values are the wire enum's."""

    PRESENT = feature_pb2.FEATURE_STATUS_PRESENT
    MISSING = feature_pb2.FEATURE_STATUS_MISSING
    EXPIRED = feature_pb2.FEATURE_STATUS_EXPIRED


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """One event of an entity as a view keeps it: the fields its aggregations read."""

    event_id: str
    ts_us: int
    values: Mapping[str, Scalar]


@dataclass(frozen=True)
class EntityHistory:
    """One entity's history in one view.

    ``events``: the retained events (any order): at least those after ``newest - retention``;
    ``first_seen``: per ``is_new`` field, each value's first event time; ``last_event_us``: the newest
    event time (None: no history).
    """

    events: Sequence[HistoryEvent] = ()
    first_seen: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    last_event_us: int | None = None

    def before(self, at_us: int, retention_us: int) -> EntityHistory:
        """The history a lookup at ``at_us`` sees: events strictly before it and after its newest such
        event minus the view's retention. ``first_seen`` is kept whole (lookups compare times).

        Online and offline both cut with this, so for any ``at_us`` after the newest event they see
        the same events. For an earlier ``at_us`` the online store may lack events it pruned already.
        """
        kept = [e for e in self.events if e.ts_us < at_us]
        if not kept:
            return EntityHistory((), self.first_seen, None)
        newest = max(e.ts_us for e in kept)
        low = newest - retention_us
        return EntityHistory([e for e in kept if e.ts_us > low], self.first_seen, newest)


EMPTY_HISTORY = EntityHistory()


@dataclass(frozen=True)
class FeatureVector:
    """Values in the requested order (None: no value), the newest contributing event times and statuses."""

    values: list[Scalar | None]
    event_times_us: list[int | None]
    statuses: list[Status]


def _values(events: Sequence[HistoryEvent], name: str) -> list[Scalar]:
    return [v for e in events if (v := e.values.get(name)) is not None]


def _numbers(events: Sequence[HistoryEvent], name: str) -> list[float]:
    return [float(v) for e in events if isinstance(v := e.values.get(name), int | float)]


def _last(events: Sequence[HistoryEvent], name: str) -> Scalar | None:
    having = [e for e in events if e.values.get(name) is not None]
    if not having:
        return None
    return max(having, key=lambda e: (e.ts_us, e.event_id)).values[name]


_NUMERIC: dict[Aggregation, Callable[[list[float]], float | None]] = {
    Aggregation.SUM: math.fsum,
    Aggregation.MEAN: lambda numbers: math.fsum(numbers) / len(numbers) if numbers else 0.0,
    Aggregation.MIN: lambda numbers: min(numbers) if numbers else None,
    Aggregation.MAX: lambda numbers: max(numbers) if numbers else None,
}
"""Aggregations of a window's numeric values of a field (non-numbers are left out)."""
_OVER_EVENTS: dict[Aggregation, Callable[[Sequence[HistoryEvent], str | None], Scalar | None]] = {
    Aggregation.COUNT: lambda events, name: float(len(events) if name is None else len(_values(events, name))),
    Aggregation.DISTINCT_COUNT: lambda events, name: float(len(set(_values(events, name or "")))),
    Aggregation.LAST: lambda events, name: _last(events, name or ""),
}
"""Aggregations over a window's events (or the whole retained history when the window is unset)."""


class _Evaluation:
    """One lookup: computes (and memoises) features for fixed histories, context and time."""

    def __init__(
        self, histories: Mapping[str, EntityHistory], context: RequestContext, at_us: int, registry: Registry
    ) -> None:
        self.histories = histories
        self.context = context
        self.at_us = at_us
        self.registry = registry
        self._windows: dict[tuple[str, int], list[HistoryEvent]] = {}
        self._numbers: dict[tuple[str, int | None, str], list[float]] = {}
        self._done: dict[str, tuple[Scalar | None, int | None, Status]] = {}

    def window(self, view: str, window_us: int | None) -> Sequence[HistoryEvent]:
        history = self.histories[view]
        if window_us is None:
            return history.events
        key = (view, window_us)
        events = self._windows.get(key)
        if events is None:
            low = self.at_us - window_us
            events = [e for e in history.events if e.ts_us > low]
            self._windows[key] = events
        return events

    def result(self, resolved: ResolvedFeature) -> tuple[Scalar | None, int | None, Status]:
        ref = resolved.ref
        done = self._done.get(ref)
        if done is None:
            done = self._on_demand(resolved) if resolved.view.on_demand else self._stream(resolved)
            self._done[ref] = done
        return done

    def _stream(self, resolved: ResolvedFeature) -> tuple[Scalar | None, int | None, Status]:
        f, view = resolved.feature, resolved.view
        history = self.histories[view.name]
        value = self._value(f.aggregation, f.field, f.window_us, history, view.name)
        at = history.last_event_us
        if at is None or value is None:
            return value, None, Status.MISSING
        ttl = view.ttl_us
        if ttl is not None and self.at_us - at > ttl:
            return value, at, Status.EXPIRED
        return value, at, Status.PRESENT

    def _value(
        self, agg: Aggregation, name: str | None, window_us: int | None, history: EntityHistory, view: str
    ) -> Scalar | None:
        numeric = _NUMERIC.get(agg)
        if numeric is not None:
            key = (view, window_us, name or "")
            numbers = self._numbers.get(key)
            if numbers is None:
                numbers = _numbers(self.window(view, window_us), name or "")
                self._numbers[key] = numbers
            return numeric(numbers)
        if agg is Aggregation.IS_NEW:
            first = history.first_seen.get(name or "", {}).get(str(self.context[name or ""]))
            return 0.0 if first is not None and first < self.at_us else 1.0
        if agg is Aggregation.SECONDS_SINCE_LAST:
            assert window_us is not None
            last = history.last_event_us
            return min(window_us, self.at_us - last) / 1e6 if last is not None else window_us / 1e6
        return _OVER_EVENTS[agg](self.window(view, window_us), name)

    def _on_demand(self, resolved: ResolvedFeature) -> tuple[Scalar | None, int | None, Status]:
        deps = self.registry.dependencies(resolved)
        env: dict[str, Scalar | None] = dict(self.context)
        times: list[int] = []
        statuses: set[Status] = set()
        for dep in deps:
            value, at, status = self.result(dep)
            env[dep.name] = value
            statuses.add(status)
            if at is not None:
                times.append(at)
        try:
            value = resolved.feature.compiled.evaluate(env)
        except ExpressionError as exc:
            raise InvalidArgument(f"on-demand feature {resolved.ref}: {exc}") from exc
        if not deps:
            return value, self.at_us, Status.PRESENT  # a feature of the request alone is always present
        if not times:
            return value, None, Status.MISSING
        return value, max(times), Status.EXPIRED if Status.EXPIRED in statuses else Status.PRESENT


def compute_features(
    features: Sequence[ResolvedFeature],
    histories: Mapping[str, EntityHistory],
    context: RequestContext,
    at_us: int,
    registry: Registry,
) -> FeatureVector:
    """The values of ``features`` for a lookup at ``at_us`` (epoch microseconds).

    ``histories`` maps view name to the entity's history in that view, cut with ``before(at_us, ...)``;
    it must hold every view the features (and their on-demand dependencies) read, ``context`` every
    field ``registry.requirements(features)`` names (callers validate first; KeyError otherwise).
    Windows are the open interval ``(at_us - window, at_us)``. A value is MISSING when the entity
    has no history in the view (windowed values then hold their default: counts and sums 0, mean 0)
    or when there is no value (min/max/last of nothing); EXPIRED when the entity's newest event is
    older than the view's ttl at ``at_us``. Raises InvalidArgument when an on-demand expression fails.
    """
    evaluation = _Evaluation(histories, context, at_us, registry)
    results = [evaluation.result(f) for f in features]
    return FeatureVector(
        values=[r[0] for r in results], event_times_us=[r[1] for r in results], statuses=[r[2] for r in results]
    )
