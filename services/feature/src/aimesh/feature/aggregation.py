"""The one function that computes feature values, used by online serving and offline retrieval alike.

``compute_features`` is pure: given each entity's history strictly before the lookup time ``t``, the
request context and ``t``, it returns the values. Both paths call it (the online store builds the
histories from its tables, offline retrieval from the lake), so they agree by construction. Sums use
``math.fsum`` (exactly rounded), so the order events arrive in never changes a value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aimesh.feature.definitions import (
    REGISTRY,
    RISKY_MERCHANT_CATEGORIES,
    Aggregation,
    OnDemand,
    Registry,
    ResolvedFeature,
)

ContextValue = float | str
RequestContext = Mapping[str, ContextValue]
"""Request-time data of the payment: amount (float), merchant_id, merchant_category, country, device_id."""


def micros(delta: timedelta) -> int:
    """``delta`` in whole microseconds (the time unit of every event time here)."""
    return delta // timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class HistoryEvent:
    """What the windowed features need of one past transaction."""

    event_id: str
    ts_us: int
    amount: float
    merchant_id: str


@dataclass(frozen=True)
class EntityHistory:
    """One entity's history strictly before a lookup time.

    ``recent`` holds at least the events of the longest window (any order); ``seen`` the values each
    IS_NEW source field took over all history; ``last_event_us`` the newest event time (None: no history).
    """

    recent: Sequence[HistoryEvent] = ()
    seen: Mapping[str, Container[str]] = field(default_factory=dict)
    last_event_us: int | None = None

    @property
    def exists(self) -> bool:
        return self.last_event_us is not None

    def before(self, at_us: int) -> EntityHistory:
        """This history cut to events strictly before ``at_us``.

        Exact for ``recent`` and ``last_event_us`` whenever ``at_us`` is within the kept window; ``seen``
        stays as it is (the online store keeps no times for it), so for an ``at_us`` earlier than the
        newest event the novelty features may count later values as seen.
        """
        if self.last_event_us is None or self.last_event_us < at_us:
            return self
        kept = [e for e in self.recent if e.ts_us < at_us]
        last = max((e.ts_us for e in kept), default=None)
        return EntityHistory(kept, self.seen, last)


EMPTY_HISTORY = EntityHistory()


@dataclass(frozen=True)
class FeatureVector:
    """Values in the requested order, and per value the newest contributing event time (None: MISSING)."""

    values: list[float]
    event_times_us: list[int | None]


@dataclass(frozen=True)
class Requirements:
    """What a set of features needs from a request: entity ids and request-context fields."""

    entities: frozenset[str]
    context_fields: frozenset[str]


def _entities_of(resolved: ResolvedFeature, registry: Registry) -> frozenset[str]:
    if resolved.view.entity:
        return frozenset({resolved.view.entity})
    found: set[str] = set()
    for dep in resolved.feature.depends_on:
        found |= _entities_of(registry.feature(dep), registry)
    return frozenset(found)


def requirements(features: Sequence[ResolvedFeature], registry: Registry = REGISTRY) -> Requirements:
    """The entities and context fields ``features`` need, dependencies of on-demand features included."""
    entities: set[str] = set()
    fields: set[str] = set()
    pending = list(features)
    while pending:
        resolved = pending.pop()
        entities |= _entities_of(resolved, registry)
        fields.update(resolved.feature.context_fields)
        pending.extend(registry.feature(dep) for dep in resolved.feature.depends_on)
    return Requirements(frozenset(entities), frozenset(fields))


def _field_values(events: Sequence[HistoryEvent], source_field: str) -> list[Any]:
    return [getattr(e, source_field) for e in events]


def _mean(events: Sequence[HistoryEvent], source_field: str) -> float:
    return math.fsum(_field_values(events, source_field)) / len(events) if events else 0.0


_WINDOW_AGGREGATIONS: dict[Aggregation, Callable[[Sequence[HistoryEvent], str], float]] = {
    Aggregation.COUNT: lambda events, _field: float(len(events)),
    Aggregation.SUM: lambda events, source_field: math.fsum(_field_values(events, source_field)),
    Aggregation.MEAN: _mean,
    Aggregation.DISTINCT_COUNT: lambda events, source_field: float(len(set(_field_values(events, source_field)))),
}
"""Windowed aggregations over a HistoryEvent field (``amount`` or ``merchant_id``)."""


class _Evaluation:
    """One lookup: computes (and memoises) any feature by name for fixed histories, context and time."""

    def __init__(
        self, histories: Mapping[str, EntityHistory], context: RequestContext, at_us: int, registry: Registry
    ) -> None:
        self.histories = histories
        self.context = context
        self.at_us = at_us
        self.registry = registry
        self._windows: dict[tuple[str, int], list[HistoryEvent]] = {}
        self._values: dict[str, float] = {}

    def window(self, entity: str, window: timedelta) -> list[HistoryEvent]:
        key = (entity, micros(window))
        events = self._windows.get(key)
        if events is None:
            low = self.at_us - key[1]
            events = [e for e in self.histories[entity].recent if low < e.ts_us < self.at_us]
            self._windows[key] = events
        return events

    def value(self, resolved: ResolvedFeature) -> float:
        cached = self._values.get(resolved.name)
        if cached is None:
            cached = self._compute(resolved)
            self._values[resolved.name] = cached
        return cached

    def _compute(self, resolved: ResolvedFeature) -> float:
        f = resolved.feature
        agg = f.aggregation
        if agg is Aggregation.ON_DEMAND:
            return self._on_demand(resolved)
        history = self.histories[resolved.view.entity]
        if agg is Aggregation.IS_NEW:
            return 0.0 if str(self.context[f.source_field]) in history.seen.get(f.source_field, ()) else 1.0
        assert f.window is not None, f"{f.name}: {agg.name} needs a window"
        if agg is Aggregation.SECONDS_SINCE_LAST:
            cap = micros(f.window)
            last = history.last_event_us
            return min(cap, self.at_us - last) / 1e6 if last is not None else cap / 1e6
        return _WINDOW_AGGREGATIONS[agg](self.window(resolved.view.entity, f.window), f.source_field)

    def _on_demand(self, resolved: ResolvedFeature) -> float:
        formula = resolved.feature.formula
        if formula is OnDemand.CONTEXT_AMOUNT:
            return float(self.context["amount"])
        if formula is OnDemand.AMOUNT_TO_CARD_MEAN_7D:
            card_mean = self.value(self.registry.feature("card_amount_mean_7d"))
            return float(self.context["amount"]) / (card_mean + 1.0)
        if formula is OnDemand.MERCHANT_CATEGORY_RISK:
            return 1.0 if str(self.context["merchant_category"]) in RISKY_MERCHANT_CATEGORIES else 0.0
        raise AssertionError(f"unhandled on-demand formula {formula}")

    def event_time(self, resolved: ResolvedFeature) -> int | None:
        own = _entities_of(resolved, self.registry)
        times = [t for e in (own or self.histories) if (t := self.histories[e].last_event_us) is not None]
        if own:
            return max(times, default=None)
        return max(times, default=self.at_us)  # a feature of the request alone is always present


def compute_features(
    features: Sequence[ResolvedFeature],
    histories: Mapping[str, EntityHistory],
    context: RequestContext,
    at_us: int,
    registry: Registry = REGISTRY,
) -> FeatureVector:
    """The values of ``features`` for a lookup at ``at_us`` (epoch microseconds).

    ``histories`` maps entity name to that entity's history strictly before ``at_us`` and must hold
    every entity ``requirements(features)`` names (an empty ``EntityHistory`` for an unknown entity);
    ``context`` must hold every context field it names. Windows are the open interval
    ``(at_us - window, at_us)``. Raises KeyError when an input is missing (callers validate first).

    ``event_times_us[i]`` is the newest event time among the entities feature ``i`` uses (for features
    of the request alone: the newest among all given entities, or ``at_us`` when none has history);
    None means no history (MISSING), the value then being the computed default (counts 0 ...).
    """
    evaluation = _Evaluation(histories, context, at_us, registry)
    return FeatureVector(
        values=[evaluation.value(f) for f in features],
        event_times_us=[evaluation.event_time(f) for f in features],
    )
